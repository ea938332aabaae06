// A JSSE client doing mutual TLS with a key from the PKCS#11 token through
// Java's SunPKCS11 provider; run as a single-file program (java JsseClient.java).
// Arguments: SUNPKCS11-CONFIG PIN CA-PEM PORT PROTOCOL:ALIAS...
// One JVM start for several handshakes (a JVM start costs seconds). For each,
// prints "handshake: PROTOCOL ALIAS" and the page openssl s_server -www sends
// back; on failure the exception chain (for a wrong PIN: CKR_PIN_INCORRECT)
// and exits 1.
import java.io.BufferedReader;
import java.io.FileInputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.security.Principal;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.Security;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import javax.net.ssl.KeyManager;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509KeyManager;

public class JsseClient {
  // Presents the one alias the test names (the token holds an RSA and an EC key).
  record OneAlias(X509KeyManager km, String alias) implements X509KeyManager {
    public String chooseClientAlias(String[] types, Principal[] issuers, Socket s) { return alias; }
    public String[] getClientAliases(String type, Principal[] issuers) { return new String[] {alias}; }
    public X509Certificate[] getCertificateChain(String a) { return km.getCertificateChain(a); }
    public PrivateKey getPrivateKey(String a) { return km.getPrivateKey(a); }
    public String chooseServerAlias(String t, Principal[] i, Socket s) { return null; }
    public String[] getServerAliases(String t, Principal[] i) { return null; }
  }

  public static void main(String[] args) throws Exception {
    try {
      Provider p = Security.getProvider("SunPKCS11").configure(args[0]);
      Security.addProvider(p);
      KeyStore token = KeyStore.getInstance("PKCS11", p);
      token.load(null, args[1].toCharArray());
      KeyManagerFactory kmf = KeyManagerFactory.getInstance("SunX509");
      kmf.init(token, args[1].toCharArray());

      KeyStore trust = KeyStore.getInstance("PKCS12");
      trust.load(null, null);
      try (FileInputStream in = new FileInputStream(args[2])) {
        trust.setCertificateEntry("ca", CertificateFactory.getInstance("X.509").generateCertificate(in));
      }
      TrustManagerFactory tmf = TrustManagerFactory.getInstance("PKIX");
      tmf.init(trust);

      X509KeyManager all = (X509KeyManager) kmf.getKeyManagers()[0];
      for (int i = 4; i < args.length; ++i) {
        String protocol = args[i].split(":")[0], alias = args[i].split(":")[1];
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(new KeyManager[] {new OneAlias(all, alias)}, tmf.getTrustManagers(), null);
        try (SSLSocket s = (SSLSocket) ctx.getSocketFactory().createSocket("127.0.0.1", Integer.parseInt(args[3]))) {
          s.setSoTimeout(30000);
          s.setEnabledProtocols(new String[] {protocol});
          s.startHandshake();
          System.out.println("handshake: " + s.getSession().getProtocol() + " " + alias);
          OutputStream out = s.getOutputStream();
          out.write("GET / HTTP/1.0\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
          out.flush();
          BufferedReader r = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.US_ASCII));
          for (String line; (line = r.readLine()) != null; ) System.out.println(line);
        }
      }
    } catch (Exception e) {
      for (Throwable t = e; t != null; t = t.getCause()) System.out.println("error: " + t);
      System.exit(1);
    }
  }
}
