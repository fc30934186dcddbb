import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log/logger.js';
import { lowerMainThreadPriority, type PriorityControl } from '../../src/serve/thread-priority.js';

const logger = createLogger({ level: 'silent' });

function control(platform: NodeJS.Platform, current: number, failWith?: string): PriorityControl & { set_: number[] } {
  const set_: number[] = [];
  return {
    platform,
    set_,
    get: () => current,
    set: (nice) => {
      if (failWith) throw new Error(failWith);
      set_.push(nice);
    },
  };
}

describe('lowerMainThreadPriority (the coordinator thread yields to the admission thread)', () => {
  it('lowers the thread by the given steps from where it runs', () => {
    const c = control('linux', 2);
    expect(lowerMainThreadPriority(5, logger, c)).toEqual({ applied: true, from: 2, to: 7 });
    expect(c.set_).toEqual([7]);
  });

  it('stops at nice 19', () => {
    const c = control('linux', 17);
    expect(lowerMainThreadPriority(5, logger, c)).toEqual({ applied: true, from: 17, to: 19 });
  });

  it("does nothing when disabled, or where a priority is the whole process's", () => {
    const off = control('linux', 0);
    expect(lowerMainThreadPriority(0, logger, off)).toMatchObject({ applied: false });
    const mac = control('darwin', 0);
    expect(lowerMainThreadPriority(5, logger, mac)).toEqual({
      applied: false,
      reason: 'thread priorities are per process on darwin',
    });
    expect([...off.set_, ...mac.set_]).toEqual([]);
  });

  it('reports a refusal instead of failing the start', () => {
    expect(lowerMainThreadPriority(5, logger, control('linux', 0, 'EACCES'))).toEqual({
      applied: false,
      reason: 'EACCES',
    });
  });
});
