/**
 * Text from outside (arguments, config, API answers, logs) can hold terminal control sequences that
 * would recolour, retitle, hide or rewrite what the operator reads. Everything printed goes through
 * `visible`: control characters are shown as escapes (`\x1b`), never obeyed.
 */

/** The colour codes of io.ts `colors()`: the only sequences passed through when `keepColors` is set. */
const OWN_SGR = '\\x1b\\[(?:1|2|7|22|27|31|32|33|36|39)m';
/** C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides ("Trojan source"). */
const CONTROL = '[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]';
const WITH_COLORS = new RegExp(`${OWN_SGR}|\\r\\n|${CONTROL}`, 'g');
const PLAIN = new RegExp(`\\r\\n|${CONTROL}`, 'g');

function escape(ch: string): string {
  const code = ch.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** Shows control characters instead of sending them; `keepColors` lets this tool's own colours through. */
export function visible(text: string, keepColors = false): string {
  return text.replace(keepColors ? WITH_COLORS : PLAIN, (m) => (m.length > 1 ? m : escape(m)));
}

/**
 * JSON.stringify escapes C0 controls but leaves C1 controls (0x9b is CSI to some terminals) and
 * bidirectional overrides raw; this escapes them too, and the document still parses to the same value.
 */
export function jsonText(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(/[\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
