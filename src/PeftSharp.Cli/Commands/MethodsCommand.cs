using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using PeftSharp.Core;
using Spectre.Console;

namespace PeftSharp.Cli.Commands;

/// <summary><c>peft methods [--json]</c>: the registered adapter methods with their parameter-count formulas.</summary>
internal static class MethodsCommand
{
    public static Command Create()
    {
        var json = new Option<bool>("--json") { Description = "Print a JSON list of {name, peft_type, aliases, parameters, description}." };
        var cmd = new Command("methods", "List the registered adapter methods and their trainable-parameter formulas.") { json };
        cmd.SetAction(parse => CliErrors.Run(parse, () =>
        {
            var methods = MethodRegistry.Default.Methods;
            if (parse.GetValue(json))
            {
                var list = new JsonArray(methods.Select(m => (JsonNode)new JsonObject
                {
                    ["name"] = m.Name,
                    ["peft_type"] = m.PeftType,
                    ["aliases"] = new JsonArray(m.Aliases.Select(a => (JsonNode)JsonValue.Create(a)!).ToArray()),
                    ["parameters"] = m.ParameterCountFormula,
                    ["description"] = m.Description,
                }).Concat(MethodRegistry.Default.Presets.Select(p => (JsonNode)new JsonObject
                {
                    ["name"] = p.Name,
                    ["peft_type"] = p.PeftType,
                    ["aliases"] = new JsonArray(),
                    ["parameters"] = p.ParameterCountFormula,
                    ["description"] = p.Description,
                    ["preset_of"] = MethodRegistry.Default.Get(p.PeftType).Name,
                })).ToArray());
                Console.WriteLine(list.ToJsonString(CliJson.Options));
                return 0;
            }
            var table = new Table().AddColumns("name", "peft_type", "trainable parameters (one d_in×d_out layer)", "description");
            foreach (var m in methods)
            {
                table.AddRow(Markup.Escape(m.Name), Markup.Escape(m.PeftType), Markup.Escape(m.ParameterCountFormula), Markup.Escape(m.Description));
            }
            foreach (var p in MethodRegistry.Default.Presets)
            {
                table.AddRow(Markup.Escape(p.Name), Markup.Escape(p.PeftType), Markup.Escape(p.ParameterCountFormula), Markup.Escape(p.Description));
            }
            AnsiConsole.Write(table);
            return 0;
        }));
        return cmd;
    }
}
