// What the restoreFiles workflow asks of its activity. Types only (workflows import it with
// `import type`).

export interface RestoreFilesInput {
  /** `<remoteId>:<vmUuid>/<ts>` of a delta backup */
  backupId: string;
  /** the disk's position (0 = first); optional when the VM has one disk */
  disk?: number;
  /** "1", "5", "vg/lv"; optional when the disk holds one readable filesystem */
  partition?: string;
  /** paths in that filesystem; folders are taken recursively */
  paths: string[];
  /**
   * Where the result goes: an archive on a configured remote (path relative to its root, ending
   * in .tar.gz, .tgz or .zip), or an absolute folder on the worker's machine (created; nothing in
   * it is replaced).
   */
  output: { remoteId: string; path: string } | { folder: string };
}

export interface RestoreFilesResult {
  backupId: string;
  /** "disk 0 (root), partition 1 (ext4)" */
  source: string;
  output: RestoreFilesInput['output'];
  format: 'tar.gz' | 'zip' | 'folder';
  files: number;
  folders: number;
  symlinks: number;
  skipped: number;
  bytes: number;
}

export interface FileRestoreActivities {
  restoreFiles(input: RestoreFilesInput): Promise<RestoreFilesResult>;
}
