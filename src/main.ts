import fs from 'node:fs';
import { inspect } from 'node:util';
import { loadConfig, misspelledSettings, SettingError } from './config.js';
import { createLogger } from './log.js';
import { createService } from './service.js';

/**
 * Ends a start that cannot go on. Written with a synchronous write, so the
 * line is out before the process is.
 */
function refuseStart(line: string): never {
  fs.writeSync(2, `image-jobs: ${line}\n`);
  process.exit(1);
}

/** The one wiring point: configuration, the service, and the signals that stop it. */
async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config.logLevel);
  for (const { name, meant } of misspelledSettings()) {
    log.warn({ variable: name, meant }, `${name} is not a setting: did you mean ${meant}? It is ignored`);
  }
  const service = await createService(config, log);
  await service.start();

  /**
   * Ends the process without waiting for libvips: a normal exit joins the
   * thread pool, and a conversion in progress (AVIF encoding cannot be
   * interrupted) could hold it for minutes. The database is as safe as after
   * any crash: running attempts come back at the next start. The logger
   * writes synchronously, so the line logged before this call is out.
   */
  const exitNow = (): never => {
    process.kill(process.pid, 'SIGKILL');
    throw new Error('unreachable');
  };

  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      exitNow();
    }
    stopping = true;
    log.info({ signal, graceMs: config.shutdownGraceMs }, 'shutting down');
    service.stop().then(
      (idle) => {
        if (!idle) {
          log.warn('a conversion is still running in libvips after the grace period: exiting now');
          exitNow();
        }
        log.info('stopped');
        process.exit(0);
      },
      (error: unknown) => {
        log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

main().catch((error: unknown) => {
  // A setting's fault is one line; anything else is a defect, and its stack is what finds it.
  refuseStart(error instanceof SettingError ? error.message : `failed to start: ${inspect(error)}`);
});
