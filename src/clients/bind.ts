type Bound<A, T> = { [K in keyof T]: T[K] extends (first: A, ...rest: infer R) => infer O ? (...rest: R) => O : never };

/** Binds the first argument (the SDK client) of each function, so procedures call `api.fn(...)` without it. */
export function bindClient<A, T extends Record<string, (first: A, ...rest: never[]) => unknown>>(first: A, fns: T): Bound<A, T> {
  return Object.fromEntries(Object.entries(fns).map(([k, f]) => [k, (...rest: never[]) => f(first, ...rest)])) as Bound<A, T>;
}
