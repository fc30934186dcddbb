// `plan --registry-config`: the Airflow version of images whose tag does not decide it, read from
// the image's labels in its registry, so CI can plan private and custom images. The version found
// is written onto a copy of the manifest as the airflow-version annotation, so decide() reads it
// like a user's annotation.
import { ANNOTATIONS, type GuardConfig } from '../core/config.js';
import { isUpstreamRepository, parseImageReference, printable, versionFromLabels } from '../core/images.js';
import { isJsonObject, type JsonObject } from '../core/objects.js';
import { identifyRelease, workloadVersion } from '../core/release.js';
import { readImageConfig, RegistryError, type RegistryOptions } from '../registry/client.js';
import { workloadKindOf, type ManifestObject } from './manifests.js';

export interface ImageResolution {
  image: string;
  /** The version read, or why none was. */
  version?: string;
  error?: string;
}

/** The manifests with resolved versions annotated, and what was resolved per image (each image read once). */
export async function resolveManifestVersions(
  manifests: ManifestObject[],
  config: GuardConfig,
  registry: RegistryOptions,
): Promise<{ manifests: ManifestObject[]; resolutions: ImageResolution[] }> {
  const byImage = new Map<string, Promise<ImageResolution>>();
  const out: ManifestObject[] = [];
  for (const manifest of manifests) {
    const kind = workloadKindOf(manifest.object);
    const identity = kind && identifyRelease(kind, manifest.object, config);
    if (!kind || !identity) {
      out.push(manifest);
      continue;
    }
    const current = workloadVersion(kind, manifest.object, identity.component);
    if (current.known && current.source === 'annotation') {
      out.push(manifest);
      continue;
    }
    const image = current.image === undefined ? undefined : parseImageReference(current.image);
    // Upstream tags decide; elsewhere the labels win over version-like text in a tag.
    if (!image || current.image === undefined || (current.known && isUpstreamRepository(image))) {
      out.push(manifest);
      continue;
    }
    let pending = byImage.get(current.image);
    if (!pending) {
      pending = resolveImage(current.image, registry);
      byImage.set(current.image, pending);
    }
    const resolution = await pending;
    out.push(resolution.version ? { ...manifest, object: annotated(manifest.object, resolution.version) } : manifest);
  }
  return { manifests: out, resolutions: await Promise.all(byImage.values()) };
}

async function resolveImage(text: string, registry: RegistryOptions): Promise<ImageResolution> {
  const image = parseImageReference(text);
  if (!image) return { image: printable(text), error: 'not an image reference' };
  try {
    const { labels } = await readImageConfig(image, registry);
    const version = versionFromLabels(image, labels);
    return version.known
      ? { image: printable(text), version: version.version.text }
      : { image: printable(text), error: version.reason };
  } catch (error) {
    if (error instanceof RegistryError) return { image: printable(text), error: error.message };
    throw error;
  }
}

function annotated(object: JsonObject, version: string): JsonObject {
  const metadata = isJsonObject(object.metadata) ? object.metadata : {};
  const annotations = isJsonObject(metadata.annotations) ? metadata.annotations : {};
  return {
    ...object,
    metadata: { ...metadata, annotations: { ...annotations, [ANNOTATIONS.airflowVersion]: version } },
  };
}
