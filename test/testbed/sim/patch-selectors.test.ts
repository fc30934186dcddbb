// Unit tests of the patch and selector semantics the API server relies on.
import { describe, expect, it } from 'vitest';
import { applyMergePatch, applyStrategicMergePatch } from '../../../testbed/sim/apiserver/patch.js';
import {
  matchesLabelRequirements,
  parseLabelSelector,
  parseFieldSelector,
} from '../../../testbed/sim/apiserver/selectors.js';

const pod = {
  spec: {
    containers: [
      {
        name: 'a',
        image: 'a:1',
        env: [
          { name: 'X', value: '1' },
          { name: 'Y', value: '2' },
        ],
        ports: [{ containerPort: 80 }],
      },
      { name: 'b', image: 'b:1' },
    ],
    volumes: [{ name: 'v1', emptyDir: {} }],
    tolerations: [{ key: 't' }],
  },
};

describe('strategic merge patch', () => {
  it('merges containers, env and ports by their merge keys and appends new elements', () => {
    const out = applyStrategicMergePatch(pod, {
      spec: {
        containers: [
          { name: 'b', image: 'b:2' },
          { name: 'a', env: [{ name: 'Z', value: '3' }], ports: [{ containerPort: 80, name: 'http' }] },
          { name: 'c', image: 'c:1' },
        ],
      },
    }) as any;
    expect(out.spec.containers.map((c: any) => `${c.name}=${c.image}`)).toEqual(['a=a:1', 'b=b:2', 'c=c:1']);
    expect(out.spec.containers[0].env.map((e: any) => e.name)).toEqual(['X', 'Y', 'Z']);
    expect(out.spec.containers[0].ports).toEqual([{ containerPort: 80, name: 'http' }]);
  });

  it('honours $patch delete/replace, $retainKeys, null deletion, and replaces lists without merge key', () => {
    const out = applyStrategicMergePatch(pod, {
      spec: {
        $setElementOrder: { containers: [{ name: 'a' }] },
        containers: [
          { name: 'b', $patch: 'delete' },
          { name: 'a', env: [{ $patch: 'replace' }, { name: 'ONLY', value: '1' }] },
        ],
        volumes: [{ name: 'v1', $retainKeys: ['name', 'configMap'], configMap: { name: 'cm' } }],
        tolerations: [{ key: 'u' }],
      },
    }) as any;
    expect(out.spec.containers.map((c: any) => c.name)).toEqual(['a']);
    expect(out.spec.containers[0].env).toEqual([{ name: 'ONLY', value: '1' }]);
    expect(out.spec.volumes).toEqual([{ name: 'v1', configMap: { name: 'cm' } }]);
    expect(out.spec.tolerations).toEqual([{ key: 'u' }]);
    expect(applyStrategicMergePatch({ a: { b: 1 }, c: 2 }, { a: null })).toEqual({ c: 2 });
  });

  it('merge patch replaces lists and deletes with null (RFC 7386)', () => {
    expect(applyMergePatch({ a: [1, 2], b: { c: 1, d: 2 } }, { a: [3], b: { c: null } })).toEqual({
      a: [3],
      b: { d: 2 },
    });
  });
});

describe('selectors', () => {
  it('parses and matches every label selector operator', () => {
    const labels = { app: 'airflow', component: 'scheduler', tier: 'x' };
    const match = (text: string) => matchesLabelRequirements(labels, parseLabelSelector(text));
    expect(match('app=airflow,component==scheduler')).toBe(true);
    expect(match('component!=scheduler')).toBe(false);
    expect(match('component in (scheduler, webserver),tier')).toBe(true);
    expect(match('component notin (scheduler)')).toBe(false);
    expect(match('!release')).toBe(true);
    expect(match('release')).toBe(false);
    expect(() => parseLabelSelector('a=b c')).toThrow(/invalid label value/);
  });

  it('parses field selectors', () => {
    expect(parseFieldSelector('metadata.name=x,status.phase!=Running')).toEqual([
      { field: 'metadata.name', op: 'eq', value: 'x' },
      { field: 'status.phase', op: 'neq', value: 'Running' },
    ]);
  });
});
