/**
 * Which Nitro line runs the module, detected at build time from the Nitro instance it is given:
 * nitropack 2 (h3 1, crossws 0.3; Nuxt 3 and 4) or Nitro 3 (the `nitro` package, h3 2, crossws
 * 0.4; Nuxt 5). The generated code imports the runtime utilities from where that line has them.
 */

/** `2`: nitropack 2.x; `3`: the `nitro` package (3.x). */
export type NitroLine = 2 | 3

/** The line of `nitro`: Nitro 3 has `nitro.meta.majorVersion` and `nitro.routing`; nitropack 2 neither. */
export function detectNitroLine(nitro: object): NitroLine {
  const meta = (nitro as { meta?: { majorVersion?: unknown } }).meta
  if (meta && typeof meta.majorVersion === 'number') return meta.majorVersion >= 3 ? 3 : 2
  return 'routing' in nitro ? 3 : 2
}

/** Import specifiers of the runtime utilities the generated modules use, per line. */
export interface LineImports {
  /** Module exporting `useRuntimeConfig`. */
  runtimeConfig: string
  /** Module exporting `useNitroApp`. */
  app: string
}

export function lineImports(line: NitroLine): LineImports {
  return line === 3
    ? { runtimeConfig: 'nitro/runtime-config', app: 'nitro/app' }
    : { runtimeConfig: 'nitropack/runtime', app: 'nitropack/runtime' }
}

/** `import { useNitroApp, useRuntimeConfig } from …` lines for `line`. */
export function importRuntimeUtils(line: NitroLine, names: Array<'useNitroApp' | 'useRuntimeConfig'>): string[] {
  const from = lineImports(line)
  const bySource = new Map<string, string[]>()
  for (const name of names) {
    const source = name === 'useNitroApp' ? from.app : from.runtimeConfig
    bySource.set(source, [...(bySource.get(source) ?? []), name])
  }
  return [...bySource].map(([source, list]) => `import { ${list.join(', ')} } from '${source}'`)
}
