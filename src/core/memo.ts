// Bounded memoisation for the pure parsers the admission path calls per request with the same few
// strings (a cluster runs a handful of images and versions). Results are frozen: every caller
// shares them.

export interface Memo<V> {
  get(key: string, compute: (key: string) => V): V;
}

/** A Map of at most `limit` entries, emptied when full (cheaper than LRU bookkeeping on every hit). */
export function boundedMemo<V>(limit: number): Memo<V> {
  const entries = new Map<string, V>();
  return {
    get(key, compute) {
      const hit = entries.get(key);
      if (hit !== undefined || entries.has(key)) return hit as V;
      const value = compute(key);
      if (entries.size >= limit) entries.clear();
      entries.set(key, value);
      return value;
    },
  };
}

/** Freezes a parser result and the plain objects inside it, so a shared cached value cannot be changed by one caller. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}

/** Distinct strings each parser keeps (images and versions in one cluster are far fewer). */
export const MEMO_LIMIT = 1024;
