/**
 * Reading a scrape as Prometheus would, three ways:
 * - `parse-prometheus-text-format` (npm; a port of the Prometheus Python client's parser with
 *   prom2json's output): counters and gauges. It is lenient (it accepts an unterminated label
 *   value) and folds every series of a labelled histogram into one, so histograms are read from
 *   the strict check below instead.
 * - A strict check of the exposition format 0.0.4 grammar, which also yields every sample.
 * - When Debian's `python3-prometheus-client` is installed (`/usr/bin/python3`), the official
 *   Prometheus Python client's parser, whose samples must be the same ({@link officialSamples}).
 */
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import parsePrometheusTextFormat, { type ParsedFamily } from 'parse-prometheus-text-format'

const NAME = /^[a-z_:][\w:]*$/i
const VALUE = /^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?|[+-]Inf|NaN)$/i
const LABEL = /^([a-z_]\w*)="((?:[^"\\\n]|\\[\\"n])*)"/i

/** One sample line: name (with `_bucket`/`_sum`/`_count`), labels, value. */
export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

export interface Scrape {
  families: ParsedFamily[]
  /** Every sample, as the strict check read it. */
  samples: Sample[]
  /** The value of one counter/gauge series; `undefined` if absent. Labels must match exactly. */
  value: (name: string, labels?: Record<string, string>) => number | undefined
  /** Every series of a family, with labels and value. */
  series: (name: string) => Array<{ labels: Record<string, string>, value: number }>
  /** One histogram series: buckets by `le`, sum and count. */
  histogram: (name: string, labels: Record<string, string>) => { buckets: Record<string, number>, sum: number, count: number } | undefined
}

/** Check `text` against the format's grammar (throws naming the line), then parse it. */
export function scrape(text: string): Scrape {
  const samples = checkExposition(text)
  const families = parsePrometheusTextFormat(text)
  const same = (a: Record<string, string> | undefined, b: Record<string, string>) => {
    const x = a ?? {}
    return Object.keys(x).length === Object.keys(b).length && Object.entries(b).every(([k, v]) => x[k] === v)
  }
  const family = (name: string) => families.find(f => f.name === name)
  return {
    families,
    samples,
    value(name, labels = {}) {
      const sample = family(name)?.metrics.find(m => same(m.labels, labels))
      return sample?.value === undefined ? undefined : Number(sample.value)
    },
    series(name) {
      return (family(name)?.metrics ?? []).map(m => ({ labels: m.labels ?? {}, value: Number(m.value) }))
    },
    histogram(name, labels) {
      const count = samples.find(x => x.name === `${name}_count` && same(x.labels, labels))
      if (!count) return undefined
      const sum = samples.find(x => x.name === `${name}_sum` && same(x.labels, labels))!
      const buckets: Record<string, number> = {}
      for (const x of samples) {
        if (x.name !== `${name}_bucket`) continue
        const { le, ...others } = x.labels
        if (same(others, labels)) buckets[le!] = x.value
      }
      return { buckets, sum: sum.value, count: count.value }
    },
  }
}

/**
 * The text format 0.0.4, strictly: `# HELP` / `# TYPE` once per family and before its samples,
 * every sample in the group of its family (histograms: `_bucket` with `le`, `_sum`, `_count`),
 * names and label values well-formed and escaped, values floats, no series twice, buckets
 * cumulative with `+Inf` equal to `_count`, and a final newline.
 */
export function checkExposition(text: string): Sample[] {
  const samples: Sample[] = []
  if (text.length && !text.endsWith('\n')) throw new Error('exposition does not end with a newline')
  const declared = new Map<string, string>()
  const seen = new Set<string>()
  const buckets = new Map<string, Array<[number, number]>>()
  const counts = new Map<string, number>()
  let current: { name: string, type: string } | undefined
  const lines = text.split('\n')
  lines.pop()
  lines.forEach((line, i) => {
    const at = `line ${i + 1} ${JSON.stringify(line)}`
    if (line === '') return
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line)
      if (!m) return // a plain comment
      if (!NAME.test(m[2]!)) throw new Error(`${at}: bad metric name`)
      if (m[1] === 'HELP') {
        if (/\\(?![\\n])/.test(m[3]!)) throw new Error(`${at}: bad escape in HELP`)
        return
      }
      if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(m[3]!)) throw new Error(`${at}: bad type`)
      if (declared.has(m[2]!)) throw new Error(`${at}: TYPE given twice (a family must be one group)`)
      declared.set(m[2]!, m[3]!)
      current = { name: m[2]!, type: m[3]! }
      return
    }
    const nameMatch = /^([a-z_:][\w:]*)/i.exec(line)
    if (!nameMatch) throw new Error(`${at}: bad sample name`)
    const name = nameMatch[1]!
    let rest = line.slice(name.length)
    const labels: Record<string, string> = {}
    if (rest.startsWith('{')) {
      rest = rest.slice(1)
      while (!rest.startsWith('}')) {
        const m = LABEL.exec(rest)
        if (!m) throw new Error(`${at}: bad label`)
        if (m[1]! in labels) throw new Error(`${at}: label ${m[1]} twice`)
        labels[m[1]!] = m[2]!
        rest = rest.slice(m[0].length)
        if (rest.startsWith(',')) rest = rest.slice(1)
        else if (!rest.startsWith('}')) throw new Error(`${at}: expected , or }`)
      }
      rest = rest.slice(1)
    }
    const parts = rest.split(' ')
    if (parts[0] !== '' || parts.length < 2 || parts.length > 3 || !VALUE.test(parts[1]!)) throw new Error(`${at}: bad value`)
    if (!current) throw new Error(`${at}: sample before any TYPE`)
    const suffix = current.type === 'histogram' ? ['_bucket', '_sum', '_count'].find(s => name === current!.name + s) : name === current.name ? '' : undefined
    if (suffix === undefined) throw new Error(`${at}: sample outside its family's group (current family ${current.name})`)
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`
    if (seen.has(key)) throw new Error(`${at}: series given twice`)
    seen.add(key)
    const unescaped = Object.fromEntries(Object.entries(labels).map(([k, v]) => [k, v.replace(/\\([\\"n])/g, (_, c: string) => c === 'n' ? '\n' : c)]))
    samples.push({ name, labels: unescaped, value: Number(parts[1]) })
    if (current.type === 'histogram') {
      const { le, ...others } = labels
      const series = `${current.name}${JSON.stringify(Object.entries(others).sort())}`
      if (suffix === '_bucket') {
        if (le === undefined) throw new Error(`${at}: bucket without le`)
        const list = buckets.get(series) ?? []
        list.push([le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), Number(parts[1])])
        buckets.set(series, list)
      }
      else if (le !== undefined) throw new Error(`${at}: le outside a bucket`)
      if (suffix === '_count') counts.set(series, Number(parts[1]))
    }
  })
  for (const [series, list] of buckets) {
    for (let i = 1; i < list.length; i++) {
      if (!(list[i]![0] > list[i - 1]![0])) throw new Error(`${series}: buckets not in increasing le order`)
      if (list[i]![1] < list[i - 1]![1]) throw new Error(`${series}: buckets not cumulative`)
    }
    const last = list.at(-1)!
    if (last[0] !== Number.POSITIVE_INFINITY) throw new Error(`${series}: no +Inf bucket`)
    if (counts.get(series) !== last[1]) throw new Error(`${series}: +Inf bucket ${last[1]} differs from _count ${counts.get(series)}`)
  }
  return samples
}

const PYTHON = '/usr/bin/python3'
const PARSE_PY = `
import json, math, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        value = s.value if math.isfinite(s.value) else str(s.value)
        out.append({"family": family.name, "type": family.type, "name": s.name, "labels": s.labels, "value": value})
print(json.dumps(out))
`

/** Whether the official Prometheus Python client's parser can run here. */
export const hasOfficialParser: boolean = (() => {
  if (!existsSync(PYTHON)) return false
  try {
    execFileSync(PYTHON, ['-c', 'import prometheus_client.parser'], { stdio: 'ignore', timeout: 10_000 })
    return true
  }
  catch {
    return false
  }
})()

/**
 * The samples of `text` as the official Prometheus Python client parses them (Debian's
 * `python3-prometheus-client`); `undefined` where it is not installed.
 */
export function officialSamples(text: string): Array<Sample & { family: string, type: string }> | undefined {
  if (!hasOfficialParser) return undefined
  const out = execFileSync(PYTHON, ['-c', PARSE_PY], { input: text, encoding: 'utf8', timeout: 10_000 })
  return (JSON.parse(out) as Array<Omit<Sample, 'value'> & { family: string, type: string, value: number | string }>)
    .map(s => ({ ...s, value: s.value === 'inf' ? Number.POSITIVE_INFINITY : s.value === '-inf' ? Number.NEGATIVE_INFINITY : Number(s.value) }))
}
