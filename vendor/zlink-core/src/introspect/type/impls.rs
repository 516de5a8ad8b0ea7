// This file is deprecated and should be removed.
// The implementations have been moved to the parent directory.