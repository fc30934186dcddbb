// The simulated Airflow: images that act like their version against a real metadata database.
export {
  createAirflowRuntime,
  type AirflowRuntime,
  type AirflowRuntimeOptions,
  type ContainerKind,
  type ResolveSecret,
  type RunningContainer,
} from './runtime.js';
export { runAirflowCommand, ExecConnectionDropped, type CliContext, type CliIO } from './cli.js';
export {
  airflowImage,
  airflowImageVersion,
  DEFAULT_IMAGE_CATALOG,
  ImageCatalog,
  resolveToVersion,
  knowsRevision,
  chainIndex,
  type AirflowImage,
} from './image.js';
export {
  createFaultInjector,
  type Fault,
  type FaultInjector,
  type FaultKind,
  type FaultRule,
  type FaultTarget,
} from './faults.js';
export { createViolationRecorder, type StaleExposure, type Violation, type ViolationRecorder } from './violations.js';
export { MIGRATIONS_LOCK_ID } from './metadata.js';
export { processArgv, shellWords } from './args.js';
