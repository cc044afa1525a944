export declare function checkTarball(tarball: string, options: { library: boolean }): string[];
