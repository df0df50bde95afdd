/**
 * Quotes one argument for a POSIX shell, for the commands shown to people (`equivalent`, undo by
 * hand). Nothing the tool runs goes through a shell: processes get argument arrays.
 */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
