// Rendered manifests (`helm template`, `kustomize build`, `kubectl get -o yaml`) as a list of
// objects: multi-document YAML or JSON, `List` kinds flattened, empty documents skipped.
import { parseAllDocuments } from 'yaml';
import { isJsonObject, type JsonObject, type WorkloadKind } from '../core/objects.js';

export class ManifestError extends Error {
  override name = 'ManifestError';
}

export interface ManifestObject {
  /** 1-based position of the YAML document it came from. */
  document: number;
  object: JsonObject;
}

/** The kinds the guard checks, by apiVersion: what `helm template` renders for them. */
const WORKLOAD_API: Record<WorkloadKind, string> = {
  Deployment: 'apps/v1',
  StatefulSet: 'apps/v1',
  Job: 'batch/v1',
  CronJob: 'batch/v1',
};

export function parseManifests(text: string, source: string): ManifestObject[] {
  const documents = parseAllDocuments(text, { prettyErrors: true });
  const objects: ManifestObject[] = [];
  documents.forEach((doc, index) => {
    const number = index + 1;
    const error = doc.errors[0];
    if (error) {
      // The first line of a pretty error ends with "at line L, column C:".
      throw new ManifestError(
        `${source}: document ${number} is not valid YAML: ${(error.message.split('\n')[0] ?? '').replace(/:$/, '')}`,
      );
    }
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) return;
    if (!isJsonObject(value))
      throw new ManifestError(
        `${source}: document ${number} is not a Kubernetes object (a ${Array.isArray(value) ? 'list' : typeof value})`,
      );
    for (const object of flatten(value, source, number)) objects.push({ document: number, object });
  });
  return objects;
}

function flatten(value: JsonObject, source: string, number: number): JsonObject[] {
  if (typeof value.kind === 'string' && value.kind.endsWith('List') && Array.isArray(value.items)) {
    return value.items.map((item, i) => {
      if (!isJsonObject(item))
        throw new ManifestError(`${source}: document ${number}, item ${i + 1} is not a Kubernetes object`);
      return item;
    });
  }
  if (typeof value.kind !== 'string' || typeof value.apiVersion !== 'string') {
    throw new ManifestError(`${source}: document ${number} has no apiVersion/kind, so it is not a Kubernetes object`);
  }
  return [value];
}

/** The guarded workload kind of an object, or undefined for kinds the guard does not check. */
export function workloadKindOf(object: JsonObject): WorkloadKind | undefined {
  const kind = object.kind as string;
  if (!(kind in WORKLOAD_API)) return undefined;
  return WORKLOAD_API[kind as WorkloadKind] === object.apiVersion ? (kind as WorkloadKind) : undefined;
}

export function objectRef(object: JsonObject): string {
  const name =
    isJsonObject(object.metadata) && typeof object.metadata.name === 'string' ? object.metadata.name : '(no name)';
  return `${String(object.kind)} ${name}`;
}
