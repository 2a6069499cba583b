/**
 * A plain recursive reader of JSON text for tests about forwarded bytes: whether any object repeats
 * a key (compared after unescaping, as JSON.parse compares them), and every string token as spelled
 * (keys and values), to check how each is escaped. It validates nothing JSON.parse has not already
 * accepted; run it only on such text.
 */
export interface Tokens {
  readonly repeatedKey: boolean;
  /** Each string token with its quotes, as written. */
  readonly strings: string[];
}

export function readTokens(text: string): Tokens {
  const strings: string[] = [];
  let repeatedKey = false;
  let i = 0;
  const space = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i] as string)) i++;
  };
  const string = (): string => {
    const start = i;
    i++;
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    const raw = text.slice(start, i);
    strings.push(raw);
    return JSON.parse(raw) as string;
  };
  const value = (): void => {
    space();
    const c = text[i];
    if (c === '"') string();
    else if (c === '{') {
      i++;
      const keys = new Set<string>();
      space();
      if (text[i] === '}') i++;
      else
        for (;;) {
          space();
          const key = string();
          if (keys.has(key)) repeatedKey = true;
          keys.add(key);
          space();
          i++; // :
          value();
          space();
          if (text[i++] === '}') break;
        }
    } else if (c === '[') {
      i++;
      space();
      if (text[i] === ']') i++;
      else
        for (;;) {
          value();
          space();
          if (text[i++] === ']') break;
        }
    } else {
      while (i < text.length && !',]} \t\n\r'.includes(text[i] as string)) i++;
    }
  };
  value();
  return { repeatedKey, strings };
}
