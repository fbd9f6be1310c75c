module github.com/posthorn/posthorn

go 1.26.0

require (
	github.com/d--j/go-milter v0.10.1
	github.com/emersion/go-sasl v0.0.0-20241020182733-b788ff22d5a6
	github.com/emersion/go-smtp v0.25.1
	github.com/go-ldap/ldap/v3 v3.4.15
	github.com/miekg/dns v1.1.73
	github.com/spf13/pflag v1.1.0
	go.etcd.io/bbolt v1.5.0
	golang.org/x/crypto v0.54.0
	golang.org/x/sys v0.50.0
)

require golang.org/x/net v0.57.0 // indirect

require (
	github.com/Azure/go-ntlmssp v0.1.1 // indirect
	github.com/emersion/go-message v0.18.2 // indirect
	github.com/go-asn1-ber/asn1-ber v1.5.8 // indirect
	github.com/google/uuid v1.6.0 // indirect
	golang.org/x/text v0.40.0 // indirect
)
