/**
 * SIGHUP for `mcpgate serve`: reopen the audit file, then re-read the config file and apply it live
 * (keys, grants, rate limits, policy; see server/reload.ts). A config that fails validation is
 * refused whole: every problem is logged with its path and the running config stays. Settings that
 * cannot change live are logged as needing a restart. Signals that arrive during a reload are
 * folded into one more reload after it.
 */
import type { Config } from '../config/schema.ts';
import type { LoadResult } from '../config/load.ts';
import type { ReloadOutcome } from '../server/reload.ts';
import type { Logger } from '../log/types.ts';

export interface HupTarget {
  readonly audit: { readonly file: string | undefined; reopen(): void };
  reload(next: Config): Promise<ReloadOutcome>;
}

export interface HupDeps {
  readonly path: string;
  readonly load: () => Promise<LoadResult>;
  readonly log: Logger;
}

/** Returns the SIGHUP listener; its promise settles when the reload (and any queued one) is done. */
export function onHangup(target: HupTarget, deps: HupDeps): () => Promise<void> {
  let running: Promise<void> | undefined;
  let again = false;
  async function once(): Promise<void> {
    const { log, path } = deps;
    if (target.audit.file !== undefined) {
      target.audit.reopen();
      log.info({}, 'audit file reopened');
    }
    const { config, issues } = await deps.load();
    for (const issue of issues) {
      if (issue.severity === 'warning') log.warn({ path: issue.path }, issue.message);
      else log.error({ path: issue.path }, issue.message);
    }
    if (config === undefined) {
      log.error({ file: path }, 'config not reloaded: the running config stays (fix the problems above)');
      return;
    }
    const outcome = await target.reload(config);
    for (const setting of outcome.restart)
      log.warn({ path: setting }, 'changed, but applies only after a restart: the running value stays');
    if (!outcome.applied) {
      for (const problem of outcome.problems) log.error({ path: problem.path }, problem.message);
      log.error({ file: path }, 'config not reloaded: the running config stays (fix the problems above)');
      return;
    }
    log.info(
      {
        file: path,
        keys: outcome.config.keys.length,
        ended_streams: outcome.endedStreams,
        restart_needed: outcome.restart.length,
      },
      'config reloaded',
    );
  }
  return function hangup() {
    if (running !== undefined) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        try {
          await once();
        } catch (err) {
          deps.log.error({ err: { message: (err as Error).message } }, 'config reload failed');
        }
      } while (again);
      running = undefined;
    })();
    return running;
  };
}
