/**
 * Summarizes the `.cpuprofile` files `--profile` leaves behind, so a regression can be pointed at
 * without opening a profiler: self time per function, and inclusive time of the gateway's own
 * functions (src/), both as shares of busy (non-idle) time. Each profile is read once and renamed
 * to `.cpuprofile.done` so the next scenario does not print it again.
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

const IDLE = '(idle)';

function frameName(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const where = url ? `${relative(process.cwd(), url.replace(/^file:\/\//, ''))}:${lineNumber + 1}` : '';
  return `${functionName || '(anonymous)'} ${where}`.trim();
}

export async function printProfiles(dir: string, log: (line: string) => void, top = 20): Promise<void> {
  const files = await readdir(dir, { recursive: true }).catch(() => [] as string[]);
  for (const file of files.filter((f) => f.endsWith('.cpuprofile')).sort()) {
    const path = join(dir, file);
    const profile = JSON.parse(await readFile(path, 'utf8')) as Profile;
    await rename(path, `${path}.done`);
    const parent = new Map<number, number>();
    const byId = new Map<number, ProfileNode>();
    for (const node of profile.nodes) {
      byId.set(node.id, node);
      for (const child of node.children ?? []) parent.set(child, node.id);
    }
    const self = new Map<string, number>();
    const inclusive = new Map<string, number>();
    let busy = 0;
    profile.samples.forEach((id, i) => {
      const node = byId.get(id);
      const dt = profile.timeDeltas[i] ?? 0;
      if (!node || node.callFrame.functionName === IDLE) return;
      busy += dt;
      const name = frameName(node);
      self.set(name, (self.get(name) ?? 0) + dt);
      const seen = new Set<string>();
      for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
        const frame = byId.get(at);
        if (!frame || !frame.callFrame.url.includes('/src/')) continue;
        const key = frameName(frame);
        if (!seen.has(key)) {
          seen.add(key);
          inclusive.set(key, (inclusive.get(key) ?? 0) + dt);
        }
      }
    });
    const show = (title: string, map: Map<string, number>) => {
      log(`  ${title}:`);
      for (const [name, t] of [...map.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)) {
        log(`  ${((100 * t) / busy).toFixed(1).padStart(5)}%  ${name}`);
      }
    };
    log(`\n  profile ${file}: ${(busy / 1e6).toFixed(1)} s busy (shares below are of busy time)`);
    show('self time', self);
    show('inclusive time, src/ functions', inclusive);
  }
}
