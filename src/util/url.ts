/** An absolute http(s) URL without credentials or fragment (one the farm may call), or undefined. */
export function parseHttpUrl(value: string): URL | undefined {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return undefined
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined
  if (url.username !== '' || url.password !== '' || url.hash !== '') return undefined
  return url
}
