/**
 * Summarizes the `.cpuprofile` files `--profile` leaves behind: self time per function, hottest
 * first, so a regression can be pointed at without opening a profiler. Each profile is read once
 * and then renamed to `.cpuprofile.done` so the next scenario does not print it again.
 */
import { readdir, readFile, rename } from 'node:fs/promises';
import { join, relative } from 'node:path';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { functionName: string; url: string; lineNumber: number };
  readonly children?: number[];
}
interface Profile {
  readonly nodes: ProfileNode[];
  readonly samples: number[];
  readonly timeDeltas: number[];
}

export async function printProfiles(dir: string, log: (line: string) => void, top = 25): Promise<void> {
  const files = await readdir(dir, { recursive: true }).catch(() => [] as string[]);
  for (const file of files.filter((f) => f.endsWith('.cpuprofile')).sort()) {
    const path = join(dir, file);
    const profile = JSON.parse(await readFile(path, 'utf8')) as Profile;
    await rename(path, `${path}.done`);
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const self = new Map<string, number>();
    let total = 0;
    profile.samples.forEach((id, i) => {
      const node = byId.get(id);
      const dt = profile.timeDeltas[i] ?? 0;
      if (!node) return;
      const { functionName, url, lineNumber } = node.callFrame;
      const where = url ? `${relative(process.cwd(), url.replace(/^file:\/\//, ''))}:${lineNumber + 1}` : '';
      const key = `${functionName || '(anonymous)'} ${where}`.trim();
      self.set(key, (self.get(key) ?? 0) + dt);
      total += dt;
    });
    log(`\n  profile ${file} (${(total / 1e6).toFixed(1)} s sampled), self time:`);
    const rows = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
    for (const [name, t] of rows) log(`  ${((100 * t) / total).toFixed(1).padStart(5)}%  ${name}`);
  }
}
