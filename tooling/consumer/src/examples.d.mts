export declare const root: string;
export declare function readmes(): string[];
export declare function examplesOf(file: string): { name: string; code: string }[];
export declare function allExamples(): { name: string; code: string }[];
