// The Node.js version the CLI needs (package.json "engines"), checked before anything else loads.
export const MIN_NODE_MAJOR = 24;

/** The message for a Node.js too old to run the CLI, or undefined when it is new enough. */
export function nodeVersionProblem(version) {
  const major = Number.parseInt(String(version).split('.')[0], 10);
  if (major >= MIN_NODE_MAJOR) return undefined;
  const shown = Number.isInteger(major) ? `${major}.x` : JSON.stringify(String(version));
  return `airflow-downgrade-guard needs Node.js ${MIN_NODE_MAJOR} or newer (this is ${shown})`;
}
