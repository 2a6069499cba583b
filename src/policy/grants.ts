/** What one principal may use: compiled once at start from a key's lists (or an OAuth scope map). */
export interface Grants {
  readonly tool: (name: string) => boolean;
  readonly prompt: (name: string) => boolean;
  readonly resource: (uri: string) => boolean;
}

/** Everything allowed: only for `auth.allow_unauthenticated`. */
export const ALLOW_ALL: Grants = Object.freeze({ tool: () => true, prompt: () => true, resource: () => true });
