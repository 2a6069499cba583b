/** The operational warning for a definition first seen not as pinned (the audit and metric are elsewhere). */
import type { Logger } from '../log/types.ts';
import type { PinMode, PinReport } from './pins.ts';

/** Longest upstream-supplied name written to the log. */
const MAX_NAME = 256;

export function pinWarning(
  report: PinReport,
  mode: PinMode,
): { fields: Record<string, unknown>; message: string } {
  const what = report.kind === 'tools' ? 'tool' : 'prompt';
  const name = report.name.length > MAX_NAME ? report.name.slice(0, MAX_NAME) + '…' : report.name;
  const outcome =
    mode === 'hide' ? 'hidden from lists and refused until re-pinned' : 'passed (pinning.on_change: warn)';
  const why =
    report.change === 'new'
      ? 'is not in the lockfile'
      : report.change === 'changed'
        ? `changed since it was pinned (${report.fields.join(', ')})`
        : 'cannot be read as a client would read it';
  return {
    fields: {
      [what]: name,
      change: report.change,
      ...(report.fields.length > 0 ? { fields: report.fields } : {}),
      ...(report.sha256 !== undefined ? { sha256: report.sha256 } : {}),
    },
    message: `${what} ${JSON.stringify(name)} ${why}: ${outcome}`,
  };
}

export function logPinReport(log: Logger, report: PinReport, mode: PinMode): void {
  const { fields, message } = pinWarning(report, mode);
  log.warn(fields, message);
}
