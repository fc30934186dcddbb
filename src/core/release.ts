// Which Airflow release and component a workload belongs to, whether that component runs Airflow
// code against the metadata database, and the Airflow version its main container runs.
import { guardedWorkloadKind, type AdmissionRequest } from './admission.js';
import { ANNOTATIONS, type GuardConfig } from './config.js';
import {
  isAirflowRepository,
  isUpstreamRepository,
  parseImageReference,
  printable,
  versionFromImage,
} from './images.js';
import {
  annotationAt,
  containersOf,
  labelMapOf,
  podTemplateOf,
  stringIn,
  type ContainerInfo,
  type JsonObject,
  type WorkloadKind,
} from './objects.js';
import { parseAirflowVersion, type AirflowVersion } from './versions.js';

export type LabelScheme = 'official-chart' | 'community-chart' | 'recommended-labels' | 'configured-labels';

export interface ReleaseIdentity {
  release: string;
  /** '' when the labels name no component. */
  component: string;
  scheme: LabelScheme;
}

const RECOMMENDED = {
  name: 'app.kubernetes.io/name',
  instance: 'app.kubernetes.io/instance',
  component: 'app.kubernetes.io/component',
};

// Labels are read in place (string values only): this runs per request.
function identifyFromLabels(labels: JsonObject | undefined, config: GuardConfig): ReleaseIdentity | undefined {
  if (!labels) return undefined;
  const release = stringIn(labels, 'release');
  if (release && stringIn(labels, 'tier') === 'airflow') {
    return { release, component: stringIn(labels, 'component') ?? '', scheme: 'official-chart' };
  }
  if (release && stringIn(labels, 'app') === 'airflow') {
    return { release, component: stringIn(labels, 'component') ?? '', scheme: 'community-chart' };
  }
  const instance = stringIn(labels, RECOMMENDED.instance);
  if (instance && stringIn(labels, RECOMMENDED.name) === 'airflow') {
    return {
      release: instance,
      component: stringIn(labels, RECOMMENDED.component) ?? '',
      scheme: 'recommended-labels',
    };
  }
  return identifyFromConfiguredLabels(labels, config);
}

function identifyFromConfiguredLabels(labels: JsonObject, config: GuardConfig): ReleaseIdentity | undefined {
  const { marker, release: releaseKeys, component: componentKeys } = config.labels;
  if (marker.length === 0 || releaseKeys.length === 0) return undefined;
  const marked = marker.some((m) => {
    const value = stringIn(labels, m.key);
    return value !== undefined && (m.value === undefined || value === m.value);
  });
  if (!marked) return undefined;
  const release = firstNonEmpty(labels, releaseKeys);
  if (!release) return undefined;
  const component = firstNonEmpty(labels, componentKeys) ?? '';
  return { release, component, scheme: 'configured-labels' };
}

function firstNonEmpty(labels: JsonObject, keys: readonly string[]): string | undefined {
  for (const key of keys) {
    const value = stringIn(labels, key);
    if (value) return value;
  }
  return undefined;
}

/** Release and component from the workload's labels, else its pod template's; undefined when not Airflow. */
export function identifyRelease(kind: WorkloadKind, object: unknown, config: GuardConfig): ReleaseIdentity | undefined {
  return (
    identifyFromLabels(labelMapOf(object), config) ??
    identifyFromLabels(labelMapOf(podTemplateOf(kind, object)), config)
  );
}

/** The release a guarded request's object belongs to, or undefined (not guarded, or not Airflow). */
export function releaseOf(request: AdmissionRequest, config: GuardConfig): string | undefined {
  const kind = guardedWorkloadKind(request);
  return kind ? identifyRelease(kind, request.object, config)?.release : undefined;
}

export type ComponentRole = 'metadata-db' | 'no-metadata-db' | 'unrecognised';

// Components that run Airflow code against the metadata database (official, community and Bitnami names).
const METADATA_DB_COMPONENTS = new Set([
  'scheduler',
  'webserver',
  'web',
  'api-server',
  'execution-api-server',
  'triggerer',
  'dag-processor',
  'worker',
  'run-airflow-migrations',
  'create-user-job',
  'create-user',
  'database-cleanup',
  'db-migrations',
  'sync-users',
  'sync-connections',
  'sync-variables',
  'sync-pools',
]);

// Never Airflow code against the metadata DB. pgbouncer carries the downgrade's own connection;
// flower only reads the Celery broker and result backend; the pod cleanup CronJob only talks to
// the Kubernetes API.
const NO_METADATA_DB_COMPONENTS = new Set([
  'pgbouncer',
  'pgbouncer-exporter',
  'statsd',
  'redis',
  'flower',
  'airflow-cleanup-pods',
  'cleanup-pods',
  'cleanup',
  'postgresql',
]);

/**
 * Long-running components that migrate the schema up to their image's head whenever it is behind:
 * the community chart's `db-migrations` Deployment. Left running, one of the newer version undoes a downgrade.
 */
const SELF_MIGRATING_COMPONENTS = new Set(['db-migrations']);

export function migratesSchemaByItself(component: string): boolean {
  return SELF_MIGRATING_COMPONENTS.has(component);
}

export function componentRole(component: string): ComponentRole {
  if (METADATA_DB_COMPONENTS.has(component) || /^worker-[a-z0-9-]+$/.test(component)) return 'metadata-db';
  if (NO_METADATA_DB_COMPONENTS.has(component)) return 'no-metadata-db';
  return 'unrecognised';
}

export type WorkloadVersion =
  | {
      known: true;
      version: AirflowVersion;
      /** resolved: the coordinator read it from the image (registry labels or a probe pod). */
      source: 'annotation' | 'image' | 'resolved';
      container?: string;
      image?: string;
    }
  | { known: false; reason: string; container?: string; image?: string };

/** Versions resolved from images (registry labels or a probe pod) by image reference; undefined: not resolved. */
export type ImageVersionLookup = (image: string) => string | undefined;

/**
 * The workload's version with a resolved image version applied: used when the tag names none, and
 * for any repository but the upstream ones (their tags name the version; elsewhere the image's labels
 * win over version-like text in a tag). A user's annotation always wins.
 */
export function withResolvedImage(v: WorkloadVersion, lookup: ImageVersionLookup | undefined): WorkloadVersion {
  if (!lookup || (v.known && v.source === 'annotation') || v.image === undefined) return v;
  const text = lookup(v.image);
  if (text === undefined) return v;
  const reference = parseImageReference(v.image);
  if (v.known && reference !== undefined && isUpstreamRepository(reference)) return v;
  const version = parseAirflowVersion(text);
  if (!version) return v;
  return {
    known: true,
    version,
    source: 'resolved',
    image: v.image,
    ...(v.container !== undefined ? { container: v.container } : {}),
  };
}

function mainContainerNames(component: string): string[] {
  const names = [component, `airflow-${component}`];
  if (component.startsWith('worker-')) names.push('worker', 'airflow-worker');
  if (component === 'web') names.push('webserver', 'airflow-webserver');
  return names;
}

/**
 * The container whose image is the component's Airflow: the one named after the component, else
 * the first with an Airflow image and version, else the only container. Init containers never
 * count (with `useDefaultImageForMigration` they run the chart's default image).
 */
export function mainContainer(kind: WorkloadKind, object: unknown, component: string): ContainerInfo | undefined {
  const containers = containersOf(podTemplateOf(kind, object));
  if (component) {
    for (const name of mainContainerNames(component)) {
      const named = containers.find((c) => c.name === name);
      if (named) return named;
    }
  }
  const airflowImage = containers.find((c) => {
    const v = versionFromImage(c.image);
    return v.known && isAirflowRepository(v.image);
  });
  if (airflowImage) return airflowImage;
  return containers.length === 1 ? containers[0] : undefined;
}

function versionAnnotation(kind: WorkloadKind, object: unknown): string | undefined {
  return (
    annotationAt(object, ANNOTATIONS.airflowVersion) ??
    annotationAt(podTemplateOf(kind, object), ANNOTATIONS.airflowVersion)
  );
}

/** The Airflow version a workload runs: the explicit annotation wins over the main container's tag. */
export function workloadVersion(kind: WorkloadKind, object: unknown, component: string): WorkloadVersion {
  const container = mainContainer(kind, object, component);
  const where = container ? { container: container.name, image: container.image } : {};
  const annotated = versionAnnotation(kind, object);
  if (annotated !== undefined) {
    const version = parseAirflowVersion(annotated.trim());
    if (version) return { known: true, version, source: 'annotation', ...where };
    return {
      known: false,
      reason: `annotation ${ANNOTATIONS.airflowVersion} '${printable(annotated, 40)}' is not an Airflow version`,
      ...where,
    };
  }
  if (!container) return { known: false, reason: 'no Airflow container found in the pod template' };
  const fromImage = versionFromImage(container.image);
  if (!fromImage.known)
    return { known: false, reason: `container '${printable(container.name, 63)}': ${fromImage.reason}`, ...where };
  return { known: true, version: fromImage.version, source: 'image', ...where };
}

/**
 * The key a release's records are indexed by (the coordinator's watch caches, the admission worker's
 * release states), so a lookup reads one release only.
 */
export function releaseKey(namespace: string, release: string): string {
  return `${namespace}/${release}`;
}
