// Environment variables through which the global setup hands the pinned binaries to test workers
// and subprocesses (see kube-tools.ts).
export const KUBECTL_ENV = 'ADG_TEST_KUBECTL';
export const HELM3_ENV = 'ADG_TEST_HELM3';
export const HELM4_ENV = 'ADG_TEST_HELM4';
export const KUBECTL_132_ENV = 'ADG_TEST_KUBECTL_132';
