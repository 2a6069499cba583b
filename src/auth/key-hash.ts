/** The stored form of an API key: its SHA-256, written `sha256:<64 hex>` (bare hex accepted). */
import { createHash } from 'node:crypto';

const HASH = /^(?:sha256:)?([0-9a-fA-F]{64})$/;

/** Returns the 64 lowercase hex digits of a configured hash, or undefined when malformed. */
export function parseKeyHash(value: string): string | undefined {
  const match = HASH.exec(value.trim());
  return match ? (match[1] as string).toLowerCase() : undefined;
}

export function sha256Hex(value: string | Buffer): string {
  return createHash('sha256').update(value).digest('hex');
}

export function formatKeyHash(hex: string): string {
  return `sha256:${hex}`;
}
