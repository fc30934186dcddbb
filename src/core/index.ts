// The pure decision core in one import: `import { decide, parseAdmissionReview } from '../core/index.js'`.
export * from './admission.js';
export * from './config.js';
export * from './decide.js';
export * from './downgrade-command.js';
export * from './heads.js';
export * from './hold.js';
export * from './images.js';
export * from './objects.js';
export * from './release.js';
export * from './response.js';
export * from './review.js';
export * from './versions.js';
