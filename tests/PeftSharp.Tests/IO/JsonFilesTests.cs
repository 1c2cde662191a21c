using System.Text;
using PeftSharp.IO;
using PeftSharp.Tests.Support;

namespace PeftSharp.Tests.IO;

public class JsonFilesTests
{
    [Fact]
    public void Reads_a_fixture_config_as_an_object()
    {
        var config = JsonFiles.ReadObject(SharedPaths.Fixture("bases", "llama", "config.json"));
        Assert.Equal(64, (int)config["hidden_size"]!);
        Assert.Equal("llama", (string)config["model_type"]!);
        using var doc = JsonFiles.ReadDocument(SharedPaths.Fixture("bases", "llama", "config.json"));
        Assert.Equal(256, doc.RootElement.GetProperty("vocab_size").GetInt32());
    }

    [Fact]
    public void Malformed_json_names_file_line_and_position()
    {
        using var dir = new TempDir();
        var path = dir.File("config.json");
        File.WriteAllText(path, "{\n  \"r\": 8,\n  \"lora_alpha\": ,\n}");
        var e = Assert.Throws<ConfigException>(() => JsonFiles.ReadObject(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("line 3, position 17", e.Message);
        Assert.Contains("line 3", Assert.Throws<ConfigException>(() => JsonFiles.ReadDocument(path)).Message);
    }

    [Fact]
    public void Non_utf8_bytes_name_file_line_and_column()
    {
        using var dir = new TempDir();
        var path = dir.File("config.json");
        // Line 2 is ` "name": "Zürich"`: the Latin-1 ü (0xFC) is its 12th byte.
        File.WriteAllBytes(path, Encoding.Latin1.GetBytes("{\n \"name\": \"Zürich\"\n}"));
        var e = Assert.Throws<ConfigException>(() => JsonFiles.ReadNode(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("not UTF-8: invalid byte 0xFC on line 2, column 12", e.Message);
    }

    [Fact]
    public void Utf8_bom_is_skipped()
    {
        using var dir = new TempDir();
        var path = dir.File("config.json");
        File.WriteAllBytes(path, [.. Encoding.UTF8.Preamble, .. Encoding.UTF8.GetBytes("{\"a\": \"é\"}")]);
        Assert.Equal("é", (string)JsonFiles.ReadObject(path)["a"]!);
    }

    [Fact]
    public void Duplicate_keys_non_object_root_null_and_missing_file_are_config_errors()
    {
        using var dir = new TempDir();
        var path = dir.File("config.json");
        File.WriteAllText(path, "{\"r\": 8, \"r\": 16}");
        Assert.Contains(path, Assert.Throws<ConfigException>(() => JsonFiles.ReadObject(path)).Message);
        Assert.Throws<ConfigException>(() => JsonFiles.ReadDocument(path));
        File.WriteAllText(path, "[1, 2]");
        Assert.Contains("the top level must be a JSON object", Assert.Throws<ConfigException>(() => JsonFiles.ReadObject(path)).Message);
        File.WriteAllText(path, "null");
        Assert.Contains("null", Assert.Throws<ConfigException>(() => JsonFiles.ReadNode(path)).Message);
        var missing = dir.File("absent.json");
        Assert.Contains(missing, Assert.Throws<ConfigException>(() => JsonFiles.ReadObject(missing)).Message);
    }
}
