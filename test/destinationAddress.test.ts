import { describe, expect, it } from 'vitest';
import { canonicalHost, createAddressPolicy } from '../src/destination/addressPolicy.js';
import { checkDestination } from '../src/destination/index.js';
import type { Destination } from '../src/jobs/options.js';

/** Every spelling of an internal address a client might try, as typed in a URL. */
const internalUrls = [
  'http://127.0.0.1/x',
  'http://2130706433/x',
  'http://0x7f000001/x',
  'http://0177.0.0.1/x',
  'http://0x7f.1/x',
  'http://127.1/x',
  'http://[::1]/x',
  'http://[0:0:0:0:0:0:0:1]/x',
  'http://[::ffff:127.0.0.1]/x',
  'http://[::ffff:7f00:1]/x',
  'http://169.254.169.254/latest/meta-data',
  'http://10.0.0.1/x',
  'http://192.168.1.1/x',
  'http://172.16.0.1/x',
  'http://100.64.0.1/x',
  'http://[fe80::1]/x',
  'http://[fc00::1]/x',
  'http://0.0.0.0/x',
  'http://[::]/x',
  'http://224.0.0.1/x',
  'http://[64:ff9b::a00:1]/x',
];

const http = (url: string): Destination => ({ type: 'http', url });

describe('address policy', () => {
  it('refuses every internal address form when UPLOAD_ALLOWED_HOSTS is unset', () => {
    const policy = createAddressPolicy(undefined);
    for (const url of internalUrls) expect(policy.hostRefusal(new URL(url).hostname), url).toMatch(/is a \w+ address/);
  });

  it('lets public unicast addresses and unresolved names through (names are checked at connection time)', () => {
    const policy = createAddressPolicy(undefined);
    for (const url of ['http://93.184.216.34/x', 'http://[2606:2800:220:1::1]/x', 'https://uploads.example.com/x']) {
      expect(policy.hostRefusal(new URL(url).hostname), url).toBeNull();
    }
  });

  it('allows loopback in every spelling once 127.0.0.1 is listed, and nothing unlisted', () => {
    const policy = createAddressPolicy(['127.0.0.1']);
    for (const url of ['http://127.0.0.1:9/x', 'http://2130706433/x', 'http://0x7f000001/x', 'http://0177.0.0.1/x', 'http://[::ffff:7f00:1]/x']) {
      expect(policy.hostRefusal(new URL(url).hostname), url).toBeNull();
    }
    for (const url of ['http://[::1]/x', 'http://10.0.0.1/x', 'http://93.184.216.34/x', 'https://uploads.example.com/x']) {
      expect(policy.hostRefusal(new URL(url).hostname), url).toMatch(/not allowed; list it in UPLOAD_ALLOWED_HOSTS/);
    }
  });

  it('matches listed names and IPv6 literals in canonical form', () => {
    const policy = createAddressPolicy(['uploads.example.com', '::1']);
    expect(policy.hostRefusal('UPLOADS.example.com.')).toBeNull();
    expect(policy.hostRefusal('[0:0:0:0:0:0:0:1]')).toBeNull();
    expect(canonicalHost('[::FFFF:7F00:1]')).toBe('127.0.0.1');
  });
});

describe('checkDestination', () => {
  it('accepts the local store and a public URL', () => {
    expect(checkDestination({ type: 'local' }, 3, undefined)).toBeNull();
    expect(checkDestination(http('https://bucket.example.com/out/{jobId}/{index}.webp?X-Amz-Signature=abc'), 3, undefined)).toBeNull();
    expect(checkDestination({ type: 'http', urls: ['https://a.example.com/1', 'https://a.example.com/2'] }, 2, undefined)).toBeNull();
  });

  it('wants one URL per image in urls', () => {
    expect(checkDestination({ type: 'http', urls: ['https://a.example.com/1'] }, 2, undefined)).toMatch(/1 URLs for 2 images/);
  });

  it('wants {index} in a single url serving several images', () => {
    expect(checkDestination(http('https://a.example.com/out.webp'), 2, undefined)).toMatch(/must contain \{index\}/);
    expect(checkDestination(http('https://a.example.com/out.webp'), 1, undefined)).toBeNull();
  });

  it('refuses internal IP literals and unlisted hosts, naming the reason but never the query', () => {
    const reason = checkDestination(http('http://169.254.169.254/latest?token=secret'), 1, undefined);
    expect(reason).toMatch(/169\.254\.169\.254 is a linkLocal address/);
    expect(reason).not.toContain('secret');
    expect(checkDestination(http('https://other.example.com/x'), 1, ['uploads.example.com'])).toMatch(/other\.example\.com is not allowed/);
    expect(checkDestination(http('http://127.0.0.1:8080/x'), 1, ['127.0.0.1'])).toBeNull();
  });

  it('checks the host of every image a template makes', () => {
    expect(checkDestination(http('http://10.0.0.{index}/x'), 3, undefined)).toMatch(/10\.0\.0\.0 is a private address/);
  });
});
