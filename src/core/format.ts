/** Bytes in IEC units with one decimal ("1.5 MiB"), for tables. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** An integer with thousands separators ("1,234,567"). */
export const formatInt = (n: number) => n.toLocaleString('en-US');
