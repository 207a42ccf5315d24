/**
 * A Prometheus scrape with the `instance_id` label every series carries taken
 * out, so a test can match series by their own labels; `instance` is the id
 * that must be on every series (checked first).
 */
export function withoutInstance(text: string, instance?: string): string {
  const series = text.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
  const unlabelled = series.filter((line) => !/[{,]instance_id="[^"]+"[,}]/.test(line) || (instance !== undefined && !line.includes(`instance_id="${instance}"`)));
  if (unlabelled.length > 0) throw new Error(`series without the instance's id: ${unlabelled.slice(0, 3).join('; ')}`);
  return text.replace(/instance_id="[^"]*",?/g, '').replace(/,\}/g, '}').replace(/\{\}/g, '');
}
