// Boolean query parameters the way the real API server converts them into its option structs
// (k8s.io/apimachinery/pkg/runtime/conversion.go, Convert_Slice_string_To_bool): absent, "0" and
// "false" in any letter case are false; every other value, the empty string included, is true.
// So the Python client's `watch=True`/`stdout=True` and Go's `strconv.FormatBool` output both work.
export function queryBool(query: URLSearchParams, name: string): boolean {
  const value = query.get(name);
  if (value === null) return false;
  return value !== '0' && value.toLowerCase() !== 'false';
}
