export { startApiServer, parseResourcePath, forbiddenError } from './server.js';
export type {
  ApiServer,
  ApiServerOptions,
  Authorizer,
  AuthorizationRequest,
  FaultRule,
  FaultMatch,
  FaultResponse,
  RequestRecord,
  ApiLogger,
  Verb,
} from './server.js';
export type { WebhookServiceResolver, UserInfo, AdmissionAttributes } from './admission.js';
export { TokenRegistry } from './auth.js';
export {
  createCertificateAuthority,
  issueServerCertificate,
  type CertificateAuthority,
  type ServerCertificate,
} from './tls.js';
export { ApiError, statusBody, type StatusBody } from './status.js';
export { exitStatus, EXEC_PROTOCOLS } from './exec.js';
export { applyStrategicMergePatch, applyMergePatch, applyJsonPatch } from './patch.js';
export {
  parseLabelSelector,
  matchesLabelRequirements,
  matchesLabelSelectorObject,
  parseFieldSelector,
} from './selectors.js';
export { startProtobufDecoder, PROTOBUF_CONTENT_TYPE, type ProtobufDecoder } from './protobuf.js';
export { queryBool } from './query.js';
