// Topic templates of a bridge (docs/bridges.md): `plant/{device}/data`. A template becomes
// an MQTT subscription filter (placeholders → `+`), a matcher that extracts the
// placeholders from a topic, and a renderer for outgoing topics.
export type Placeholder = "device" | "command" | "type";

export interface TopicTemplate {
  readonly source: string;
  readonly filter: string;
  match(topic: string): Partial<Record<Placeholder, string>> | null;
  render(values: Partial<Record<Placeholder, string>>): string;
}

const PLACEHOLDER = /\{(device|command|type)\}/g;

/** Why a template is unusable, or null. */
export function templateProblem(source: string, required: Placeholder[]): string | null {
  for (const name of required) if (!source.includes(`{${name}}`)) return `must contain {${name}}`;
  if (/[+#]/.test(source)) return "must not contain MQTT wildcards (+, #)";
  const unknown = source.replace(PLACEHOLDER, "").match(/\{[^}]*\}/);
  if (unknown) return `unknown placeholder ${unknown[0]}`;
  for (const level of source.split("/")) {
    const names = level.match(PLACEHOLDER) ?? [];
    // A placeholder must fill a whole topic level, so that `+` can stand for it.
    if (names.length > 1 || (names.length === 1 && level !== names[0])) return `a placeholder must be a whole topic level ('${level}')`;
  }
  return null;
}

export function compileTemplate(source: string): TopicTemplate {
  const levels = source.split("/");
  const filter = levels.map((l) => (l.startsWith("{") ? "+" : l)).join("/");
  return {
    source,
    filter,
    match(topic) {
      const parts = topic.split("/");
      if (parts.length !== levels.length) return null;
      const out: Partial<Record<Placeholder, string>> = {};
      for (let i = 0; i < levels.length; i++) {
        const level = levels[i]!;
        if (level.startsWith("{")) {
          if (!parts[i]) return null;
          out[level.slice(1, -1) as Placeholder] = parts[i];
        } else if (level !== parts[i]) return null;
      }
      return out;
    },
    render: (values) => source.replace(PLACEHOLDER, (_m, name: Placeholder) => values[name] ?? ""),
  };
}

/** Do two filters (with `+` only) match at least one common topic? */
export function filtersOverlap(a: string, b: string): boolean {
  const x = a.split("/");
  const y = b.split("/");
  return x.length === y.length && x.every((level, i) => level === "+" || y[i] === "+" || level === y[i]);
}
