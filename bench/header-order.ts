/**
 * The client's headers in another order: order 0 is the order given; order k > 0 a fixed
 * permutation of it (the same k gives the same order in every run). Node gives `req.headers` a
 * hidden class per order its headers arrive in, so each order is what one kind of client looks like
 * to the gateway's code (bench/ab.ts `--header-orders`).
 */
export function headerOrder(
  headers: Readonly<Record<string, string>>,
  order: number,
): Readonly<Record<string, string>> {
  const entries = Object.entries(headers);
  if (order === 0 || entries.length < 2) return headers;
  // A seeded Fisher–Yates shuffle (a small LCG): deterministic, and distinct orders for small k.
  let seed = order * 2654435761;
  const next = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed;
  };
  for (let i = entries.length - 1; i > 0; i--) {
    const j = next() % (i + 1);
    [entries[i], entries[j]] = [entries[j]!, entries[i]!];
  }
  return Object.fromEntries(entries);
}
