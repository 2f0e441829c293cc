//! Keys for tests of tokens an identity provider signs. Made for these
//! tests only (`openssl genpkey`) and used nowhere else: never trust them.

/// An RSA 2048 private key (PKCS#8 PEM), to sign RS256 test tokens.
pub const RSA_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIIEuwIBADANBgkqhkiG9w0BAQEFAASCBKUwggShAgEAAoIBAQDyBy4FjxiiHFom
nqayvKeSWwLWWJ2QNxIa77ySdkWMWFtDVBKxSWe9A2zdbJjp/8RDzWH0I3rBTKMe
aEMNJSdL5HWskdd97RySoln5kzDJTPK8OnPqIx5dS0sKQm6scb5fPwb82TO6dbKD
XiX/7mswxOE+QTWnu4OWVuYf4BH3NO76Vddujh/PsAgihG/RGiPF/zD7IxrOG9fJ
x6LEHpl1CSsClrMDbZcMlKCbVrKbvqQ0rskoppl+MzHqQ5SYnrPPP34TPlaO2Yxp
UnGAKhbCRIr3/TD1/uRhq3eXaf+NDVzhHDLzGUy8mMRsr5RL8Kxrna9ywL/n2vtz
dLo0IsaBAgMBAAECgf9o8LQDtQf5QlHUbPXaifIeg1e3mLS40ygGhew9lQqSz7zC
dLGmLS3Nxq5tU6j5zOxMecD/GmMfbRtNE+f+yx0+ytA7AwFsmGLLMZnRnQCKR9L3
ymB4JMIFsZ/X0vYpzye8JJfjCkpjjqTYUPoo/jd77eG8HIonMCbeCM+/AmjHxlP3
c6FbD3sCOtETyMg3dsL0rKh8MYYMAjgbqca3bUMflYFj/ZitJ39SgS1w77rQDw5A
a0H5bSJ6iNX6F4YYb2DBd4Q6HFUKnp4kDOftBPROXBD1lFFzIX2xwDubdsYmYXVz
dDN5utohABGrhhVWkMNE+tv+Ce652sdSrnbidL0CgYEA/GxuiDtQ/3X59BFcglyI
7epc7pnmg3dEFV+Fgsjbdybh/98nX2CwmiXMrVcWCsETr/NTEohW6F5VkB/4QHJ9
7MnP4FouGK39T5fB5u7lWUrRL8DZhSk6bFww0AW0mbEzEc3rQQucj5Fe5/aoBOxk
ZZ6Cx+/NYOYrEbQ2w3F48T8CgYEA9XUK1Wj/O93WxPHJsX05nvrqpS7XF/AjQP4i
Gn5A4HW3A/1j00AkXvk6HOe8zVVjwxtc2FBRvy53bd83uTHBIIbycpvw+FaX1ZZd
sdRS2rKwxJHnETXScYF2Nbvr3q1ep7cj6NeAmJf2hZTzX0JgOVgTsDliP0LBMyOo
i11emD8CgYEA90Ivs3qHCPXDdfRbrcZ+yq47ge13A2gcZONAoK+narvHvSAWLTNF
SnmkWFdp2/btFfk/cnPizZM6NQdb4aVE/GFjItyzMrGb5A8/fLqeJi1HY4OAjxOn
iuVzWxF7quEMqXAP9ZMuNOOtF4NhahE09uWiLb8UasqLfbgNvLy2P3kCgYASq6F0
VDU934TrnBykZIsSfbGFeQehaYG0+t+rNjlHGY0fP5HtSq65jqmN806YK8uX1qf8
SDe/nBA3ikgZzSAMklc0wonUyflopLRhx2259uedPB/gXkCwo5FTSwUI/hT6GuMf
Xe0JLl3xEUBl2Y2qLvnoaKUBfNlnQ2oZl7OPTwKBgH3Dh0I9PcWimGN0U+cGK/As
enOsdh3ShuCH+5m7gZPpTS8+X/AqjdfPK+PfDEY0sfzv240IYVp3ojl1y3GohF38
JISs/G9AZLEhe3VIoSfznq4+SJ0wRKqtf358+dxbous1e6W7j9dj3SqmJtVBbaeK
D2HziA6dheGyJntDRGiH
-----END PRIVATE KEY-----\n";

/// Its public key (PEM), as an identity provider publishes it.
pub const RSA_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA8gcuBY8YohxaJp6msryn
klsC1lidkDcSGu+8knZFjFhbQ1QSsUlnvQNs3WyY6f/EQ81h9CN6wUyjHmhDDSUn
S+R1rJHXfe0ckqJZ+ZMwyUzyvDpz6iMeXUtLCkJurHG+Xz8G/NkzunWyg14l/+5r
MMThPkE1p7uDllbmH+AR9zTu+lXXbo4fz7AIIoRv0Rojxf8w+yMazhvXyceixB6Z
dQkrApazA22XDJSgm1aym76kNK7JKKaZfjMx6kOUmJ6zzz9+Ez5WjtmMaVJxgCoW
wkSK9/0w9f7kYat3l2n/jQ1c4Rwy8xlMvJjEbK+US/Csa52vcsC/59r7c3S6NCLG
gQIDAQAB
-----END PUBLIC KEY-----\n";

/// A P-256 private key (PKCS#8 PEM), to sign ES256 test tokens.
pub const EC_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgZsc0ChOfEC8Ou+Mx
RMjCm9eh75n0voW+HAIo0x1zr4ehRANCAAQ0qOdzSQElOxerEd+nvFxHLJkImycV
6IN2fBMOijKPqlYx1OgaejGYvlKOpo2gw/DOjdLOnz4Y52bUfDknlks9
-----END PRIVATE KEY-----\n";

/// Its public key (PEM).
pub const EC_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAENKjnc0kBJTsXqxHfp7xcRyyZCJsn
FeiDdnwTDooyj6pWMdToGnoxmL5SjqaNoMPwzo3Szp8+GOdm1Hw5J5ZLPQ==
-----END PUBLIC KEY-----\n";
