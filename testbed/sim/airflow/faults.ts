// Failure injection for the simulated Airflow: rules matched per pod-name pattern (or globally),
// optionally only a number of times, so a test can say "the first downgrade exec fails".

export type Fault =
  /** The exec'd command exits non-zero at once with this message on stderr. */
  | { kind: 'exec-fail'; exitCode?: number; message?: string }
  /** The exec'd command never completes until the client goes away. */
  | { kind: 'exec-hang' }
  /**
   * A migration stops after committing `steps` steps: exits 1 ('exit'), the connection drops
   * without a status ('drop'), or it hangs until the client goes away ('hang').
   */
  | { kind: 'exec-halfway'; steps: number; then?: 'exit' | 'drop' | 'hang' }
  /** Every metadata DB access from the matching containers fails with this message. */
  | { kind: 'db-error'; message?: string }
  /** Containers start (one-shot commands begin, servers become ready) this much later. */
  | { kind: 'slow-start'; delayMs: number };

export type FaultKind = Fault['kind'];

export interface FaultRule {
  /** Pod name: exact, a glob with '*', or a RegExp; omitted matches every pod. */
  pod?: string | RegExp;
  namespace?: string;
  container?: string;
  /** Matched against the argv joined by spaces (exec and container commands); omitted matches any. */
  command?: string | RegExp;
  fault: Fault;
  /** How many times it fires; unlimited when omitted. */
  times?: number;
}

export interface FaultTarget {
  namespace: string;
  pod: string;
  container: string;
  argv?: readonly string[];
}

export interface FaultInjector {
  add(rule: FaultRule): () => void;
  clear(): void;
  /** The first matching rule of one of these kinds; consumes one of its `times`. */
  take<K extends FaultKind>(target: FaultTarget, kinds: readonly K[]): Extract<Fault, { kind: K }> | undefined;
  /** Like take, without consuming (for faults that describe a state, like db-error). */
  peek<K extends FaultKind>(target: FaultTarget, kinds: readonly K[]): Extract<Fault, { kind: K }> | undefined;
}

function globToRegExp(glob: string): RegExp {
  const escaped = glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${escaped}$`);
}

function textMatches(pattern: string | RegExp | undefined, value: string, exactOrGlob: boolean): boolean {
  if (pattern === undefined) return true;
  if (pattern instanceof RegExp) return pattern.test(value);
  if (!exactOrGlob) return value.includes(pattern);
  return pattern.includes('*') ? globToRegExp(pattern).test(value) : pattern === value;
}

function ruleMatches(rule: FaultRule, target: FaultTarget): boolean {
  if (rule.namespace !== undefined && rule.namespace !== target.namespace) return false;
  if (rule.container !== undefined && rule.container !== target.container) return false;
  if (!textMatches(rule.pod, target.pod, true)) return false;
  if (rule.command !== undefined) {
    if (!target.argv) return false;
    if (!textMatches(rule.command, target.argv.join(' '), false)) return false;
  }
  return true;
}

export function createFaultInjector(): FaultInjector {
  const rules: Array<{ rule: FaultRule; left: number }> = [];

  const find = <K extends FaultKind>(target: FaultTarget, kinds: readonly K[], consume: boolean) => {
    const entry = rules.find(
      (e) => e.left > 0 && (kinds as readonly FaultKind[]).includes(e.rule.fault.kind) && ruleMatches(e.rule, target),
    );
    if (!entry) return undefined;
    if (consume) entry.left -= 1;
    return entry.rule.fault as Extract<Fault, { kind: K }>;
  };

  return {
    add: (rule) => {
      if (rule.times !== undefined && (!Number.isInteger(rule.times) || rule.times < 1)) {
        throw new Error(`fault rule times must be a positive integer, got ${rule.times}`);
      }
      const entry = { rule, left: rule.times ?? Infinity };
      rules.push(entry);
      return () => {
        const index = rules.indexOf(entry);
        if (index >= 0) rules.splice(index, 1);
      };
    },
    clear: () => {
      rules.length = 0;
    },
    take: (target, kinds) => find(target, kinds, true),
    peek: (target, kinds) => find(target, kinds, false),
  };
}
