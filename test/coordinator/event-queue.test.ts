import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { Writable } from 'node:stream';
import { EventQueue } from '../../src/coordinator/event-queue.js';

function capture(): { logger: pino.Logger; lines: () => Array<Record<string, unknown>> } {
  const out: string[] = [];
  const stream = new Writable({ write: (chunk, _enc, done) => (out.push(String(chunk)), done()) });
  return {
    logger: pino({ level: 'info' }, stream),
    lines: () => out.map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('EventQueue', () => {
  it('returns at once and writes in the background with bounded concurrency', async () => {
    const { logger } = capture();
    let active = 0;
    let peak = 0;
    const written: string[] = [];
    const recorder = new EventQueue({
      logger,
      concurrency: 2,
      write: async (_ns, event) => {
        active++;
        peak = Math.max(peak, active);
        await new Promise((r) => setTimeout(r, 20));
        written.push(String(event.reason));
        active--;
      },
    });
    const started = Date.now();
    for (let i = 0; i < 6; i++) recorder.record('ns', { reason: `R${i}` });
    expect(Date.now() - started).toBeLessThan(10);
    expect(recorder.pending).toBe(6);
    await recorder.flush();
    expect(written.sort()).toEqual(['R0', 'R1', 'R2', 'R3', 'R4', 'R5']);
    expect(peak).toBe(2);
    expect(recorder.written).toBe(6);
  });

  it('logs every failed write and every dropped Event, never throws', async () => {
    const { logger, lines } = capture();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const recorder = new EventQueue({
      logger,
      concurrency: 1,
      maxQueued: 2,
      write: async (_ns, event) => {
        await gate;
        if (event.reason === 'Bad') throw new Error('events is forbidden');
      },
    });
    recorder.record('ns', { reason: 'First' }); // in flight
    recorder.record('ns', { reason: 'Bad' }); // queued
    recorder.record('ns', { reason: 'Third' }); // queued
    recorder.record('ns', { reason: 'Dropped' }); // queue full
    release();
    await recorder.flush();
    expect(recorder.dropped).toBe(1);
    expect(recorder.failed).toBe(1);
    expect(recorder.written).toBe(2);
    const logged = lines();
    expect(logged.some((l) => l.msg === 'event queue full; event not recorded' && l.reason === 'Dropped')).toBe(true);
    expect(
      logged.some((l) => l.msg === 'could not record event' && l.reason === 'Bad' && l.err === 'events is forbidden'),
    ).toBe(true);
  });

  it('flush resolves at once when nothing is pending, and after the last write otherwise', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const recorder = new EventQueue({ logger: capture().logger, write: () => gate });
    let idleFlushed = false;
    void recorder.flush().then(() => (idleFlushed = true));
    await Promise.resolve();
    expect(idleFlushed).toBe(true);
    recorder.record('ns', { reason: 'Slow' });
    let busyFlushed = false;
    const flushed = recorder.flush().then(() => (busyFlushed = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(busyFlushed).toBe(false);
    release();
    await flushed;
    expect(recorder.pending).toBe(0);
  });
});
