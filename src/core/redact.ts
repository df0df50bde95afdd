const SECRET_KEY = /(pass(word|wd)?|secret|token|api[-_]?key|auth|credential|private[-_]?key|cookie|signature|dsn)/i;
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s:@/]*):([^\s@/]+)@/gi;
const MASK = '****';

/** True when a key (env var, header, field) names something that holds a secret. */
export function looksSecret(key: string): boolean {
  return SECRET_KEY.test(key);
}

/**
 * Replaces known secret values and URL passwords in text. Every output path (stderr, stdout,
 * journal) goes through one Redactor, so a secret resolved from config can never be printed.
 */
export class Redactor {
  private readonly secrets = new Set<string>();

  /** Registers a value that must never appear in output (ignores trivially short values). */
  add(value: string | undefined | null): void {
    if (!value || value.length < 4) return;
    this.secrets.add(value);
    try {
      const enc = encodeURIComponent(value);
      if (enc !== value) this.secrets.add(enc);
    } catch {
      /* not encodable: the raw value is enough */
    }
  }

  /** Registers the password inside a URL, if any. */
  addUrl(url: string): void {
    try {
      const u = new URL(url);
      if (u.password) this.add(decodeURIComponent(u.password));
    } catch {
      /* not a URL */
    }
  }

  /** Registers every value found under a secret-looking key or name/value pair inside `input`. */
  registerSecretsIn(input: unknown, key?: string): void {
    if (typeof input === 'string') {
      if (key && looksSecret(key)) this.add(input);
      return;
    }
    if (Array.isArray(input)) return input.forEach((x) => this.registerSecretsIn(x));
    if (input && typeof input === 'object') {
      const obj = input as Record<string, unknown>;
      const pairName = pairKey(obj);
      if (pairName && looksSecret(pairName) && typeof obj.value === 'string') this.add(obj.value);
      for (const [k, v] of Object.entries(obj)) this.registerSecretsIn(v, k);
    }
  }

  text(input: string): string {
    let out = input.replace(URL_USERINFO, (_m, scheme: string, user: string) => `${scheme}${user}:${MASK}@`);
    // Longest first, so a secret that contains another is masked whole.
    const sorted = [...this.secrets].sort((a, b) => b.length - a.length);
    for (const s of sorted) if (out.includes(s)) out = out.split(s).join(MASK);
    return out;
  }

  /** Deep-redacts a JSON-able value: strings are scrubbed, and values under secret-looking keys are masked. */
  value<T>(input: T): T {
    return this.walk(input, undefined) as T;
  }

  private walk(v: unknown, key: string | undefined): unknown {
    if (typeof v === 'string') return key && looksSecret(key) && v !== '' ? MASK : this.text(v);
    if (Array.isArray(v)) return v.map((x) => this.walk(x, undefined));
    if (v && typeof v === 'object') {
      const obj = v as Record<string, unknown>;
      // {name, value} / {key, value} pairs (env vars) are secret when the name is.
      const pairName = pairKey(obj);
      if (pairName && looksSecret(pairName)) {
        return { ...obj, value: typeof obj.value === 'string' && obj.value !== '' ? MASK : obj.value };
      }
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(obj)) out[k] = this.walk(x, k);
      return out;
    }
    return v;
  }
}

function pairKey(obj: Record<string, unknown>): string | undefined {
  if (!('value' in obj)) return undefined;
  if (typeof obj.name === 'string') return obj.name;
  if (typeof obj.key === 'string') return obj.key;
  return undefined;
}

export const REDACTED = MASK;
