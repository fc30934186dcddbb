export * from './generate.js';
export * from './rotation.js';
export * from './self-managed.js';
export * from './source.js';
export * from './write.js';
