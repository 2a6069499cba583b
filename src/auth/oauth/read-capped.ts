/**
 * A response body read whole, but never past a cap: what the authorization server sends (its
 * discovery document, its JWK set) is held in memory, so a huge or endless answer is a failed fetch.
 */

/**
 * The body as text, or a throw once it passes `max` bytes (the rest is not read); the fetch's signal
 * bounds how long it may take.
 */
export async function readCapped(response: Response, max: number): Promise<string> {
  const declared = Number(response.headers.get('content-length'));
  if (declared > max) {
    void response.body?.cancel().catch(() => {});
    throw new Error(`the answer is larger than ${max} bytes`);
  }
  if (response.body === null) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > max) throw new Error(`the answer is larger than ${max} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
