import { describe, expect, it } from 'vitest';
import { cloneJson } from '../../../testbed/sim/json-clone.js';

describe('cloneJson (the simulated store copies every object in and out)', () => {
  it('copies nested JSON data deeply, keeping undefined members', () => {
    const input = { a: 1, b: 'x', c: null, d: true, e: undefined, f: [1, { g: [2, 3] }], h: { i: { j: 'k' } } };
    const copy = cloneJson(input);
    expect(copy).toStrictEqual(input);
    expect(copy.f).not.toBe(input.f);
    expect(copy.f[1]).not.toBe(input.f[1]);
    expect(copy.h.i).not.toBe(input.h.i);
    (copy.h.i as { j: string }).j = 'changed';
    expect(input.h.i.j).toBe('k');
  });

  it('keeps an own "__proto__" key a key (JSON.parse makes them) and does not touch the prototype', () => {
    const input = JSON.parse('{"metadata":{"__proto__":{"polluted":true},"name":"x"}}') as {
      metadata: Record<string, unknown>;
    };
    const copy = cloneJson(input);
    expect(Object.getPrototypeOf(copy.metadata)).toBe(Object.prototype);
    expect(Object.keys(copy.metadata)).toEqual(['__proto__', 'name']);
    expect(Object.getOwnPropertyDescriptor(copy.metadata, '__proto__')?.value).toEqual({ polluted: true });
  });

  it('gives what is not plain data to structuredClone (a Date stays a Date)', () => {
    const when = new Date('2026-11-25T00:00:00Z');
    const copy = cloneJson({ when, nested: [when] });
    expect(copy.when).toBeInstanceOf(Date);
    expect(copy.when).not.toBe(when);
    expect(copy.when.getTime()).toBe(when.getTime());
    expect(copy.nested[0]).toBeInstanceOf(Date);
  });

  it('returns primitives as they are', () => {
    for (const v of [0, -1.5, 'text', '', true, false, null, undefined]) expect(cloneJson(v)).toBe(v);
  });
});

describe('Store watchers that only read', () => {
  it('share the stored event; the others get their own copy, and nothing they do reaches the store', async () => {
    const { Store } = await import('../../../testbed/sim/store.js');
    const { RESOURCES } = await import('../../../testbed/sim/resources.js');
    const store = new Store();
    const seen: { shared: unknown[]; copied: unknown[] } = { shared: [], copied: [] };
    store.watch(RESOURCES.configmaps, undefined, undefined, (e) => seen.shared.push(e.object), { readOnly: true });
    store.watch(RESOURCES.configmaps, undefined, undefined, (e) => {
      (e.object.metadata as { labels?: Record<string, string> }).labels = { changed: 'by-watcher' };
      seen.copied.push(e.object);
    });
    store.watch(RESOURCES.configmaps, undefined, undefined, (e) => seen.shared.push(e.object), { readOnly: true });
    store.create(RESOURCES.configmaps, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'c', namespace: 'ns' },
    });
    expect(seen.shared).toHaveLength(2);
    expect(seen.shared[0]).toBe(seen.shared[1]);
    expect(seen.copied[0]).not.toBe(seen.shared[0]);
    expect((seen.shared[0] as { metadata: { labels?: unknown } }).metadata.labels).toBeUndefined();
    expect(store.get(RESOURCES.configmaps, 'ns', 'c')?.metadata.labels).toBeUndefined();
  });
});
