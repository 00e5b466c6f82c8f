/** Which versions of a model are served (Triton's ModelVersionPolicy, TF Serving's servable_version_policy). */
export type VersionPolicy =
  | { readonly kind: 'latest'; readonly numVersions: number }
  | { readonly kind: 'all' }
  | { readonly kind: 'specific'; readonly versions: readonly number[] };

export const DEFAULT_VERSION_POLICY: VersionPolicy = { kind: 'latest', numVersions: 1 };

/** The versions to load out of those present in the repository, highest first. */
export function selectVersions(policy: VersionPolicy, available: readonly number[]): number[] {
  const descending = [...available].sort((a, b) => b - a);
  switch (policy.kind) {
    case 'latest':
      return descending.slice(0, policy.numVersions);
    case 'all':
      return descending;
    case 'specific':
      return descending.filter((version) => policy.versions.includes(version));
  }
}
