package vfolder

// SetAfterMkdir installs a hook run between creating a directory and
// opening it to give it away (nil removes it): where a racing job would
// swap the new directory for a symbolic link.
func SetAfterMkdir(hook func(p string)) { afterMkdir = hook }
