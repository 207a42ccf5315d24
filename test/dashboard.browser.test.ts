import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { jobInState } from './support/db.js';
import { startService } from './support/service.js';
import { delay, waitFor } from './support/wait.js';

/** Debian's Chromium; `.ci/run` installs it. Without it (a bare dev machine) this test is skipped, not failed. */
const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = path.resolve('test-artifacts/dashboard.png');
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const HOUR = 3_600_000;

describe.skipIf(!fs.existsSync(CHROMIUM))('dashboard in Chromium', () => {
  it('shows the counts by status, the recent jobs with their errors, and the memory chart', async () => {
    const s = await startService();
    const { db, store } = s;
    const { ops } = s.service;

    // Real jobs through the API while the sampler records memory and queue depth.
    const png = await sharp({ create: { width: 1600, height: 1200, channels: 3, background: { r: 30, g: 120, b: 200 } } }).png().toBuffer();
    for (let round = 0; round < 12; round += 1) {
      if (round < 6) {
        const answer = await fetch(`${s.url}/jobs`, { method: 'POST', body: png, headers: { 'content-type': 'image/png' } });
        expect(answer.status).toBe(202);
      }
      await ops.sampler.sample();
      await delay(250);
    }
    await waitFor(async () => (await store.countByStatus()).succeeded === 6, 20_000);
    await ops.sampler.sample();
    // And jobs in the other states, as other processes or earlier runs would have left them.
    const failed = await jobInState(db, store, 'failed', { finishedAt: Date.now() });
    db.prepare(`UPDATE jobs SET last_error_code = 'destination_rejected', last_error_message = 'PUT answered 403 Forbidden' WHERE id = ?`).run(failed.id);
    await jobInState(db, store, 'cancelled', { finishedAt: Date.now() });
    await jobInState(db, store, 'queued', { job: { runAt: Date.now() + HOUR } });
    // The factory stamps its rows at the epoch; a minute ago reads better on the page.
    db.prepare('UPDATE jobs SET created_at = ? WHERE created_at = 0').run(Date.now() - 60_000);

    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const pageErrors: string[] = [];
      const foreignRequests: string[] = [];
      page.on('pageerror', (error) => pageErrors.push(error.message));
      page.on('console', (message) => {
        if (message.type() === 'error') pageErrors.push(message.text());
      });
      page.on('request', (request) => {
        if (!request.url().startsWith(s.url) && !request.url().startsWith('data:')) foreignRequests.push(request.url());
      });
      page.on('response', (response) => {
        if (response.status() >= 400) pageErrors.push(`${response.url()} answered ${response.status()}`);
      });

      await page.goto(`${s.url}/`);
      await page.waitForSelector('body[data-loaded="true"]', { timeout: 10_000 });

      const counts = await store.countByStatus();
      expect(counts).toEqual({ queued: 1, running: 0, succeeded: 6, failed: 1, cancelled: 1 });
      for (const [status, n] of Object.entries(counts)) {
        expect(await page.textContent(`[data-count="${status}"]`), status).toBe(String(n));
      }
      expect(await page.textContent('[data-count="depth"]')).toBe('1');
      // Which instance answered, as several may share one queue.
      expect(await page.getAttribute('#live', 'data-instance')).toBe(s.service.jobs.scheduler.owner);
      expect(await page.textContent('#live-text')).toContain(`instance ${s.service.jobs.scheduler.owner}`);

      const rows = page.locator('#jobs tr');
      expect(await rows.count()).toBe(9);
      expect(await rows.first().getAttribute('data-job')).toBe(String(failed.id + 2));
      const failedRow = page.locator(`#jobs tr[data-job="${failed.id}"]`);
      expect(await failedRow.getAttribute('data-status')).toBe('failed');
      expect(await failedRow.locator('td.error').textContent()).toContain('destination_rejected');
      // Each row links to its job's JSON.
      const link = await failedRow.locator('a').getAttribute('href');
      expect(link).toBe(`/jobs/${failed.id}`);
      expect(await (await fetch(`${s.url}${link}`)).json()).toMatchObject({ id: failed.id, status: 'failed' });

      const samples = ops.sampler.samples().length;
      expect(samples).toBeGreaterThanOrEqual(14);
      expect(await page.getAttribute('#memory-chart', 'data-samples')).toBe(String(samples));
      for (const series of ['rssBytes', 'heapUsedBytes', 'externalBytes', 'depth']) {
        const d = await page.getAttribute(`#memory-chart path.series-${series}`, 'd');
        expect(d, series).toMatch(/^M[\d.]+,[\d.]+ L/);
      }
      const rss = (await page.getAttribute('#memory-chart path.series-rssBytes', 'd'))!;
      expect(rss.split(' L')).toHaveLength(samples);
      expect(await page.textContent('[data-now="rssBytes"]')).toMatch(/^\d+(\.\d)? MiB$/);

      await page.hover('#memory-chart', { position: { x: 900, y: 120 } });
      expect(await page.isVisible('#tooltip')).toBe(true);

      fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      expect(pageErrors).toEqual([]);
      expect(foreignRequests).toEqual([]);
    } finally {
      await browser.close();
    }
  });
});
