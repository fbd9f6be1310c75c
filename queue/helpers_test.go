package queue

// indexLen is the number of jobs in x.
func indexLen(x *Index) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.m)
}

// indexHas reports whether x holds job id of dir.
func indexHas(x *Index, dir, id string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	_, ok := x.m[indexKey{dir, id}]
	return ok
}
