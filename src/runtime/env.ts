/**
 * Env spelling of runtime config keys, as Nitro's `applyEnv` reads them: the prefix (`NITRO_`,
 * or `NUXT_` in Nuxt) then the key path split into words like scule's `snakeCase` and
 * upper-cased. `runtimeConfig.wsProxy.liveChat.connectTimeout` is overridden by
 * `NITRO_WS_PROXY_LIVE_CHAT_CONNECT_TIMEOUT`.
 */

/** `connectTimeout` → `CONNECT_TIMEOUT`, `liveChat` → `LIVE_CHAT`, `chatV2` → `CHAT_V2`. */
export function toEnvSuffix(key: string): string {
  return splitWords(key).join('_').toUpperCase()
}

/** The env variable overriding `runtimeConfig.wsProxy[name][option]` (without prefix). */
export function envKey(name: string, option: string): string {
  return `WS_PROXY_${toEnvSuffix(name)}_${toEnvSuffix(option)}`
}

/**
 * Word boundaries of a camelCase key, matching Nitro's env lookup: a capital after a lowercase
 * letter starts a word, and in a run of capitals the last one starts the word of the lowercase
 * letters after it (`myAPIKey` → `my`, `API`, `Key`). Digits take no side.
 */
function splitWords(key: string): string[] {
  const words: string[] = []
  let word = ''
  let previous: boolean | undefined
  for (const char of key) {
    const upper = /\d/.test(char) ? undefined : char !== char.toLowerCase()
    if (previous === false && upper === true) {
      words.push(word)
      word = char
    }
    else if (previous === true && upper === false && word.length > 1) {
      words.push(word.slice(0, -1))
      word = word.slice(-1) + char
    }
    else {
      word += char
    }
    previous = upper
  }
  words.push(word)
  return words
}
