export interface PublishedPackage {
  /** e.g. `packages/schedules` */
  dir: string;
  name: string;
  manifest: Record<string, unknown> & { name: string; version: string; bin?: Record<string, string> };
}
export declare const root: string;
export declare function publishedPackages(): PublishedPackage[];
export declare function pnpmCommand(args: string[]): [string, string[]];
export declare function packAll(dest: string): Map<string, string>;
