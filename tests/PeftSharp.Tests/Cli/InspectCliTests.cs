using System.Text.Json;
using PeftSharp.Tests.Support;

namespace PeftSharp.Tests.Cli;

public class InspectCliTests
{
    public static TheoryData<string> FixtureAdapters()
    {
        var data = new TheoryData<string>();
        foreach (var dir in Directory.GetDirectories(SharedPaths.Fixture("cases")).Order())
        {
            if (File.Exists(Path.Combine(dir, "adapter", "adapter_config.json")))
            {
                data.Add(Path.GetFileName(dir));
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(FixtureAdapters))]
    public void Inspect_json_reports_peft_type_rank_targets_and_file_element_count(string caseId)
    {
        var folder = SharedPaths.Fixture("cases", caseId, "adapter");
        var r = CliRunner.Run("inspect", folder, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var got = JsonDocument.Parse(r.Stdout);
        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "adapter_config.json")));
        Assert.Equal(config.RootElement.GetProperty("peft_type").GetString(), got.RootElement.GetProperty("peft_type").GetString());
        Assert.Equal(config.RootElement.GetProperty("r").GetInt32(), got.RootElement.GetProperty("r").GetInt32());
        Assert.True(got.RootElement.TryGetProperty("target_modules", out _));
        // Element count straight from the safetensors header, parsed here independently of the library.
        var header = RawHeader(Path.Combine(folder, "adapter_model.safetensors"));
        long expected = 0;
        foreach (var t in header.EnumerateObject().Where(t => t.Name != "__metadata__"))
        {
            expected += t.Value.GetProperty("shape").EnumerateArray().Aggregate(1L, (a, d) => a * d.GetInt64());
        }
        Assert.Equal(expected, got.RootElement.GetProperty("trainable_parameters").GetInt64());
        Assert.Equal(header.EnumerateObject().Count(t => t.Name != "__metadata__"), got.RootElement.GetProperty("tensors").GetArrayLength());
    }

    private static JsonElement RawHeader(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var n = (int)BitConverter.ToUInt64(bytes, 0);
        return JsonDocument.Parse(bytes.AsMemory(8, n)).RootElement.Clone();
    }

    [Theory]
    [InlineData("{\"peft_type\": \"LORA\", \"r\": \"x\", \"target_modules\": [\"q\"]}")]
    [InlineData("{\"peft_type\": \"SOMETHING_ELSE\"}")]
    [InlineData("not json")]
    [InlineData("")]
    [InlineData("{\"peft_type\": \"LORA\", \"r\": 8")]
    [InlineData("[1, 2]")]
    [InlineData("{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 16, \"target_modules\": [\"q_proj\", \"v_proj\"]}")]
    [InlineData("{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 16, \"target_modules\": [\"nonexistent_proj\"]}")]
    [InlineData("{\"peft_type\": \"LORA\", \"r\": 8, \"target_modules\": [\"q_proj\", \"v_proj\"], \"layer_replication\": [[0, 1],\n [0, 2]]}")]
    public void Inspect_rejects_bad_config_with_one_line_on_stderr(string configText)
    {
        var dir = Directory.CreateTempSubdirectory("peftsharp-inspect-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "adapter_config.json"), configText);
            File.Copy(SharedPaths.Fixture("cases", "llama-lora-qv", "adapter", "adapter_model.safetensors"), Path.Combine(dir, "adapter_model.safetensors"));
            var r = CliRunner.Run("inspect", dir, "--json");
            Assert.Equal(1, r.ExitCode);
            Assert.Single(r.Stderr.Trim().Split('\n'));
            Assert.StartsWith("error: ", r.Stderr);
            Assert.Contains("adapter_", r.Stderr);
            // Stack-trace-free, as a user's script checking for " at " frames expects.
            Assert.DoesNotContain(" at ", r.Stderr);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Inspect_rejects_truncated_weights_naming_the_file()
    {
        var dir = Directory.CreateTempSubdirectory("peftsharp-inspect-").FullName;
        try
        {
            var src = SharedPaths.Fixture("cases", "llama-lora-qv", "adapter");
            File.Copy(Path.Combine(src, "adapter_config.json"), Path.Combine(dir, "adapter_config.json"));
            var bytes = File.ReadAllBytes(Path.Combine(src, "adapter_model.safetensors"));
            File.WriteAllBytes(Path.Combine(dir, "adapter_model.safetensors"), bytes[..(bytes.Length / 2)]);
            var r = CliRunner.Run("inspect", dir, "--json");
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("adapter_model.safetensors", r.Stderr);
            Assert.DoesNotContain(" at ", r.Stderr);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Methods_json_lists_lora_with_its_peft_type()
    {
        var r = CliRunner.Run("methods", "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.Contains(doc.RootElement.EnumerateArray(), m => m.GetProperty("name").GetString() == "lora" && m.GetProperty("peft_type").GetString() == "LORA");
    }
}

public class MethodRegistryTests
{
    [Theory]
    [InlineData("lora", false)]
    [InlineData("dora", true)]
    [InlineData("DoRA", true)]
    public void Default_config_for_a_name_or_preset(string name, bool dora)
    {
        var config = Assert.IsType<PeftSharp.Methods.Lora.LoraConfig>(PeftSharp.Core.MethodRegistry.Default.DefaultConfig(name));
        Assert.Equal(dora, config.UseDora);
    }

    [Fact]
    public void Unknown_method_name_lists_the_known_ones()
    {
        var e = Assert.Throws<PeftException>(() => PeftSharp.Core.MethodRegistry.Default.DefaultConfig("nope"));
        Assert.Contains("lora", e.Message);
        Assert.Contains("dora", e.Message);
    }
}
