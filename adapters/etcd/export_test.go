package etcd

// UnaryPages makes s read Scan and List in unary pages, as it does on a
// server without RangeStream.
func UnaryPages(s *Store) *Store { s.unaryPages = true; return s }
