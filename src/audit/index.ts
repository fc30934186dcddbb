export * from './records.js';
export * from './redact.js';
export * from './migrations.js';
export * from './store.js';
export * from './log.js';
