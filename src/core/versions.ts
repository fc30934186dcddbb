// Airflow version strings: parse strictly, compare like Airflow's own `packaging.version` for the
// forms the project publishes (X.Y.Z, pre-releases aN/bN/rcN, .postN).
import { boundedMemo, deepFreeze, MEMO_LIMIT } from './memo.js';

export interface AirflowVersion {
  major: number;
  minor: number;
  patch: number;
  /** Pre-release, e.g. { label: 'rc', number: 1 } for 3.1.0rc1. */
  pre?: { label: 'a' | 'b' | 'rc'; number: number };
  post?: number;
  /** The canonical text, e.g. '3.1.0rc1'. */
  text: string;
}

const VERSION_PATTERN = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:(a|b|rc)(\d{1,3}))?(?:\.post(\d{1,3}))?$/;

const parsedVersions = boundedMemo<AirflowVersion | undefined>(MEMO_LIMIT);

/**
 * Parses '3.0.2', '3.1.0rc1', '2.10.5.post1'; anything else (including shell syntax) is undefined.
 * The result is frozen and shared: the same text is parsed once.
 */
export function parseAirflowVersion(text: string): AirflowVersion | undefined {
  if (typeof text !== 'string' || text.length > 32) return undefined;
  return parsedVersions.get(text, parseVersionText);
}

function parseVersionText(text: string): AirflowVersion | undefined {
  const m = VERSION_PATTERN.exec(text);
  if (!m) return undefined;
  const version: AirflowVersion = {
    major: Number(m[1]),
    minor: Number(m[2]),
    patch: Number(m[3]),
    text,
  };
  if (m[4] !== undefined) version.pre = { label: m[4] as 'a' | 'b' | 'rc', number: Number(m[5]) };
  if (m[6] !== undefined) version.post = Number(m[6]);
  return deepFreeze(version);
}

const PRE_ORDER = { a: 0, b: 1, rc: 2 } as const;

/** Negative when a < b, 0 when equal, positive when a > b (3.1.0rc1 < 3.1.0 < 3.1.0.post1). */
export function compareVersions(a: AirflowVersion, b: AirflowVersion): number {
  const byRelease = a.major - b.major || a.minor - b.minor || a.patch - b.patch;
  if (byRelease !== 0) return byRelease;
  // A release sorts after its pre-releases: rank 3 (no allocation: headForVersion compares per row).
  const ar = a.pre ? PRE_ORDER[a.pre.label] : 3;
  const br = b.pre ? PRE_ORDER[b.pre.label] : 3;
  if (ar !== br) return ar - br;
  const an = a.pre ? a.pre.number : 0;
  const bn = b.pre ? b.pre.number : 0;
  if (an !== bn) return an - bn;
  return (a.post ?? -1) - (b.post ?? -1);
}

export function isPreRelease(v: AirflowVersion): boolean {
  return v.pre !== undefined;
}
