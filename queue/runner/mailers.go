package runner

// MailerFlags returns the F= flags of a mailer as posthorn uses them for
// header conditions (the reference sendmail.cf's), for -bt's =M.
func MailerFlags(name string) string { return defaultMailerFlags[name] }
