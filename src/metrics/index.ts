export * from './metrics.js';
export { metricsHandler, registryExposition, type Exposition } from './handler.js';
