// Label and field selectors with the real server's grammar (k8s.io/apimachinery/pkg/labels, fields).
import type { KubeObject, ResourceType } from '../types.js';

export type LabelRequirement =
  | { key: string; op: 'eq' | 'neq'; value: string }
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | 'notexists' };

export class SelectorError extends Error {}

/** Splits on commas that are not inside parentheses. */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

const KEY = /^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?\/)?[a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?$/;
const VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function checkKey(key: string): string {
  if (!KEY.test(key)) throw new SelectorError(`unable to parse requirement: invalid label key "${key}"`);
  return key;
}

function checkValue(value: string): string {
  if (!VALUE.test(value) || value.length > 63) {
    throw new SelectorError(`unable to parse requirement: invalid label value: "${value}"`);
  }
  return value;
}

function parseRequirement(text: string): LabelRequirement {
  const setMatch = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(text);
  if (setMatch) {
    const [, key = '', op, list = ''] = setMatch;
    const values = list.split(',').map((v) => checkValue(v.trim()));
    return { key: checkKey(key), op: op as 'in' | 'notin', values };
  }
  if (text.startsWith('!')) return { key: checkKey(text.slice(1).trim()), op: 'notexists' };
  const eqMatch = /^([^=!\s]+)\s*(==|=|!=)\s*(.*)$/.exec(text);
  if (eqMatch) {
    const [, key = '', op, value = ''] = eqMatch;
    return { key: checkKey(key), op: op === '!=' ? 'neq' : 'eq', value: checkValue(value.trim()) };
  }
  return { key: checkKey(text), op: 'exists' };
}

export function parseLabelSelector(text: string | undefined | null): LabelRequirement[] {
  if (!text) return [];
  return splitTopLevel(text).map(parseRequirement);
}

export function matchesLabelRequirements(
  labels: Record<string, string> | undefined,
  reqs: LabelRequirement[],
): boolean {
  const l = labels ?? {};
  return reqs.every((req) => {
    const has = Object.hasOwn(l, req.key);
    const value = l[req.key];
    switch (req.op) {
      case 'eq':
        return has && value === req.value;
      case 'neq':
        return !has || value !== req.value;
      case 'in':
        return has && req.values.includes(value ?? '');
      case 'notin':
        return !has || !req.values.includes(value ?? '');
      case 'exists':
        return has;
      case 'notexists':
        return !has;
    }
  });
}

/** metav1.LabelSelector (matchLabels + matchExpressions), as in webhook selectors and workload specs. */
export interface LabelSelectorObject {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: string; values?: string[] }>;
}

export function labelSelectorObjectToRequirements(selector: LabelSelectorObject | undefined): LabelRequirement[] {
  if (!selector) return [];
  const reqs: LabelRequirement[] = [];
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) reqs.push({ key, op: 'eq', value });
  for (const expr of selector.matchExpressions ?? []) {
    switch (expr.operator) {
      case 'In':
        reqs.push({ key: expr.key, op: 'in', values: expr.values ?? [] });
        break;
      case 'NotIn':
        reqs.push({ key: expr.key, op: 'notin', values: expr.values ?? [] });
        break;
      case 'Exists':
        reqs.push({ key: expr.key, op: 'exists' });
        break;
      case 'DoesNotExist':
        reqs.push({ key: expr.key, op: 'notexists' });
        break;
      default:
        throw new SelectorError(`"${expr.operator}" is not a valid label selector operator`);
    }
  }
  return reqs;
}

export function matchesLabelSelectorObject(
  labels: Record<string, string> | undefined,
  selector: LabelSelectorObject | undefined,
): boolean {
  return matchesLabelRequirements(labels, labelSelectorObjectToRequirements(selector));
}

export interface FieldRequirement {
  field: string;
  op: 'eq' | 'neq';
  value: string;
}

export function parseFieldSelector(text: string | undefined | null): FieldRequirement[] {
  if (!text) return [];
  return text
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '')
    .map((part) => {
      const m = /^([^=!]+)(==|=|!=)(.*)$/.exec(part);
      if (!m) throw new SelectorError(`invalid selector: '${text}'; can't understand '${part}'`);
      const [, field = '', op, value = ''] = m;
      return { field: field.trim(), op: op === '!=' ? 'neq' : 'eq', value: value.trim() };
    });
}

const COMMON_FIELDS = ['metadata.name', 'metadata.namespace'];
const FIELDS_BY_KIND: Record<string, string[]> = {
  Pod: [
    'spec.nodeName',
    'spec.restartPolicy',
    'spec.schedulerName',
    'spec.serviceAccountName',
    'spec.hostNetwork',
    'status.phase',
    'status.podIP',
    'status.nominatedNodeName',
  ],
  Event: [
    'involvedObject.kind',
    'involvedObject.namespace',
    'involvedObject.name',
    'involvedObject.uid',
    'involvedObject.apiVersion',
    'involvedObject.resourceVersion',
    'involvedObject.fieldPath',
    'reason',
    'reportingComponent',
    'source',
    'type',
    'regarding.kind',
    'regarding.name',
    'regarding.namespace',
    'regarding.uid',
  ],
  Secret: ['type'],
  Namespace: ['status.phase'],
  Job: ['status.successful'],
  ReplicaSet: ['status.replicas'],
};

function fieldValue(obj: KubeObject, field: string): string {
  if (field === 'source' && obj.kind === 'Event') {
    const source = obj.source as { component?: string } | undefined;
    return source?.component ?? '';
  }
  let current: unknown = obj;
  for (const key of field.split('.')) {
    if (current === null || typeof current !== 'object') return '';
    current = (current as Record<string, unknown>)[key];
  }
  if (current === undefined || current === null) return '';
  return String(current);
}

export function checkFieldSelector(type: ResourceType, reqs: FieldRequirement[]): void {
  const allowed = [...COMMON_FIELDS, ...(FIELDS_BY_KIND[type.kind] ?? [])];
  for (const req of reqs) {
    if (!allowed.includes(req.field)) throw new SelectorError(`field label not supported: ${req.field}`);
  }
}

export function matchesFieldRequirements(obj: KubeObject, reqs: FieldRequirement[]): boolean {
  return reqs.every((req) => {
    const value = fieldValue(obj, req.field);
    return req.op === 'eq' ? value === req.value : value !== req.value;
  });
}
